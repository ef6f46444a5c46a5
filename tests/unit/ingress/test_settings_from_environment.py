"""Ingress settings from the environment: defaults, overrides, and a bad value named at boot."""

import pytest

from common.env import SettingError, redact_url
from common.settings import ProcessSettings
from ingress.settings import IngressSettings
from schemas.topology import Topology


def test_defaults() -> None:
    s = IngressSettings.from_env({})
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert s.topology == Topology("resultbus")
    assert (s.host, s.port, s.confirm_timeout, s.retry_after) == ("127.0.0.1", 8080, 2.0, 5)
    assert s.sources_path == "deploy/sources.example.toml"
    process = ProcessSettings.from_env({})
    assert process.log_json is None and process.log_level == "INFO"
    assert (process.metrics_host, process.metrics_port, process.shutdown_timeout) == ("127.0.0.1", None, 10.0)


def test_overrides_and_no_password_in_repr() -> None:
    env = {
        "RESULTBUS_AMQP_URL": "amqp://svc:hunter2@broker:5672/vh",
        "RESULTBUS_AMQP_PREFIX": "rb2",
        "RESULTBUS_INGRESS_PORT": "9000",
        "RESULTBUS_CONFIRM_TIMEOUT": "500ms",
        "RESULTBUS_RETRY_AFTER": "30",
        "RESULTBUS_LOG_LEVEL": "debug",
        "RESULTBUS_LOG_JSON": "true",
        "RESULTBUS_SHUTDOWN_TIMEOUT": "1m",
        "RESULTBUS_METRICS_HOST": "0.0.0.0",
        "RESULTBUS_METRICS_PORT": "9100",
    }
    s = IngressSettings.from_env(env)
    process = ProcessSettings.from_env(env)
    assert (process.shutdown_timeout, process.metrics_host, process.metrics_port) == (60.0, "0.0.0.0", 9100)
    assert s.topology.raw_exchange == "rb2.raw"
    assert (s.port, s.confirm_timeout, s.retry_after, process.log_level, process.log_json) == (
        9000,
        0.5,
        30,
        "DEBUG",
        True,
    )
    assert "hunter2" not in repr(s)
    assert s.amqp_url_redacted == "amqp://svc:***@broker:5672/vh"
    assert redact_url("amqp://broker/") == "amqp://broker/"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RESULTBUS_INGRESS_PORT", "http"),
        ("RESULTBUS_INGRESS_PORT", "70000"),
        ("RESULTBUS_CONFIRM_TIMEOUT", "soon"),
        ("RESULTBUS_CONFIRM_TIMEOUT", "0"),
        ("RESULTBUS_RETRY_AFTER", "-1"),
        ("RESULTBUS_LOG_LEVEL", "LOUD"),
        ("RESULTBUS_LOG_JSON", "maybe"),
        ("RESULTBUS_AMQP_PREFIX", ""),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        IngressSettings.from_env({name: value})
        ProcessSettings.from_env({name: value})


def test_worker_settings_repr_hides_passwords() -> None:
    from common.settings import WorkerSettings

    settings = WorkerSettings.from_env(
        {
            "RESULTBUS_AMQP_URL": "amqp://u:amqp-secret@h/",
            "RESULTBUS_DATABASE_URL": "postgresql://u:pg-secret@h/db",
        }
    )
    assert "amqp-secret" not in repr(settings) and "pg-secret" not in repr(settings)
    assert "u:***@h" in repr(settings) and settings.amqp_url == "amqp://u:amqp-secret@h/"
