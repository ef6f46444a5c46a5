"""Settings every process reads, and those of every process that uses the broker and the database;
read once from the environment at start-up, through their declarations (common/env.py)."""

from collections.abc import Mapping

import msgspec

from common.amqp import parse_urls, redact_urls
from common.env import (
    Group,
    Setting,
    choice,
    duration,
    durations,
    optional_flag,
    optional_port,
    redact_url,
    text,
)
from schemas.topology import DEFAULT_PREFIX, Topology

LOG_LEVEL = choice(
    "RESULTBUS_LOG_LEVEL",
    "INFO",
    ("DEBUG", "INFO", "WARNING", "ERROR"),
    upper=True,
    help="DEBUG, INFO, WARNING or ERROR",
)
LOG_JSON = optional_flag(
    "RESULTBUS_LOG_JSON", absent="(JSON unless a terminal)", help="1: JSON log lines, 0: readable ones"
)
SHUTDOWN_TIMEOUT = duration("RESULTBUS_SHUTDOWN_TIMEOUT", 10.0, help="graceful shutdown limit")
METRICS_HOST = text("RESULTBUS_METRICS_HOST", "127.0.0.1", help="the address of the metrics listener")
METRICS_PORT = optional_port("RESULTBUS_METRICS_PORT", help="serve /metrics, /healthz, /readyz on this port")


def _amqp_urls(raw: str) -> str:
    parse_urls(raw)  # refuses what is not one or several amqp(s):// addresses
    return raw


def _prefix(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _schema(raw: str) -> str | None:
    if raw and not raw.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {raw!r}")
    return raw or None


DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
AMQP_URL = Setting(
    "RESULTBUS_AMQP_URL",
    DEFAULT_AMQP_URL,
    _amqp_urls,
    shown=DEFAULT_AMQP_URL,
    help="the broker; several comma-separated addresses for a cluster's nodes",
)
AMQP_PREFIX = Setting(
    "RESULTBUS_AMQP_PREFIX",
    DEFAULT_PREFIX,
    _prefix,
    shown=DEFAULT_PREFIX,
    help="prefix of every exchange and queue name",
)
DATABASE_URL = text(
    "RESULTBUS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/resultbus", help="the PostgreSQL database"
)
DATABASE_SCHEMA = Setting[str | None](
    "RESULTBUS_DATABASE_SCHEMA",
    None,
    _schema,
    shown="(the database's default)",
    help="a schema of its own inside the database",
)
PUBLISH_TIMEOUT = duration(
    "RESULTBUS_PUBLISH_TIMEOUT", 5.0, minimum=0.1, help="longest wait for a broker confirm of a publish"
)
# The routers' delay tiers: after the last a webhook lands in the dead-letter queue (about 1.7 hours
# by default). A router setting (workers/router/settings.py); the admin's console names the tiers'
# queues from it too.
RETRY_DELAYS = durations(
    "RESULTBUS_RETRY_DELAYS",
    (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0),
    help="the broker's delay tiers, then the dead-letter queue",
)

PROCESS = Group("every process", (LOG_LEVEL, LOG_JSON, SHUTDOWN_TIMEOUT, METRICS_HOST, METRICS_PORT))
BROKER_AND_DATABASE = Group(
    "broker and database", (AMQP_URL, AMQP_PREFIX, DATABASE_URL, DATABASE_SCHEMA, PUBLISH_TIMEOUT)
)


class ProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the lifecycle (common/service.py) reads for every process, whatever its role."""

    log_level: str = LOG_LEVEL.default
    log_json: bool | None = None  # None: JSON unless stderr is a terminal
    shutdown_timeout: float = SHUTDOWN_TIMEOUT.default
    # /metrics, /healthz and /readyz, never on a vendor-facing listener. Loopback unless told: a
    # container sets 0.0.0.0 for its orchestrator's probes.
    metrics_host: str = METRICS_HOST.default
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ProcessSettings":
        return cls(
            log_level=LOG_LEVEL.read(env),
            log_json=LOG_JSON.read(env),
            shutdown_timeout=SHUTDOWN_TIMEOUT.read(env),
            metrics_host=METRICS_HOST.read(env),
            metrics_port=METRICS_PORT.read(env),
        )


def topology(env: Mapping[str, str]) -> Topology:
    return Topology(AMQP_PREFIX.read(env))


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The broker and the database, as every worker role, the admin and the operator commands read them."""

    amqp_url: str = AMQP_URL.default
    topology: Topology = Topology()
    database_url: str = DATABASE_URL.default
    # A schema of its own inside the database (tests, or several deployments in one database).
    database_schema: str | None = None
    publish_timeout: float = PUBLISH_TIMEOUT.default

    def __repr__(self) -> str:
        # The URLs may carry passwords: a traceback or a log line that shows settings must not.
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        shown.update(amqp_url=redact_urls(self.amqp_url), database_url=redact_url(self.database_url))
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WorkerSettings":
        return cls(
            amqp_url=AMQP_URL.read(env),
            topology=topology(env),
            database_url=DATABASE_URL.read(env),
            database_schema=DATABASE_SCHEMA.read(env),
            publish_timeout=PUBLISH_TIMEOUT.read(env),
        )
