"""Settings every process reads, and the workers' own; read once from the environment at start-up."""

from collections.abc import Mapping

import msgspec

from common.amqp import env_amqp_url, redact_urls
from common.env import (
    SettingError,
    env_duration,
    env_durations,
    env_int,
    env_optional_flag,
    env_port,
    env_str,
    redact_url,
)
from schemas.topology import DEFAULT_PREFIX, Topology

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the lifecycle (common/service.py) reads for every process, whatever its role."""

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal
    shutdown_timeout: float = 10.0
    # /metrics, /healthz and /readyz, never on a vendor-facing listener. Loopback unless told: a
    # container sets 0.0.0.0 for its orchestrator's probes.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ProcessSettings":
        d = cls()
        level = env_str(env, "RESULTBUS_LOG_LEVEL", d.log_level).upper()
        if level not in _LEVELS:
            raise SettingError(f"RESULTBUS_LOG_LEVEL: expected one of {', '.join(_LEVELS)}, got {level!r}")
        return cls(
            log_level=level,
            log_json=env_optional_flag(env, "RESULTBUS_LOG_JSON"),
            shutdown_timeout=env_duration(env, "RESULTBUS_SHUTDOWN_TIMEOUT", d.shutdown_timeout),
            metrics_host=env_str(env, "RESULTBUS_METRICS_HOST", d.metrics_host),
            metrics_port=env_port(env, "RESULTBUS_METRICS_PORT"),
        )


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    topology: Topology = Topology()
    database_url: str = "postgresql://postgres@127.0.0.1:5432/resultbus"
    # A schema of its own inside the database (tests, or several deployments in one database).
    database_schema: str | None = None
    prefetch: int = 512
    batch_size: int = 256
    # How long a batch that is not full may wait for more webhooks while they are streaming in (0: not
    # at all): fewer, larger transactions under load, at the price of up to this much latency.
    batch_wait: float = 0.0
    publish_timeout: float = 5.0
    # In-process retries of a failed batch, for blips (a failover, a dropped connection)...
    quick_retries: tuple[float, ...] = (0.2, 1.0)
    # ...then each message waits in the broker's delay tiers, and after the last lands in the
    # dead-letter queue (about 1.7 hours by default).
    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)

    def __repr__(self) -> str:
        # The URLs may carry passwords: a traceback or a log line that shows settings must not.
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        shown.update(amqp_url=redact_urls(self.amqp_url), database_url=redact_url(self.database_url))
        return f"WorkerSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WorkerSettings":
        schema = env.get("RESULTBUS_DATABASE_SCHEMA") or None
        if schema is not None and not schema.replace("_", "").isalnum():
            raise SettingError(f"RESULTBUS_DATABASE_SCHEMA: not a plain identifier: {schema!r}")
        d = cls()  # the defaults: on a Struct class, `cls.field` is a descriptor, not the default
        return cls(
            amqp_url=env_amqp_url(env),
            topology=Topology(_prefix(env)),
            database_url=env_str(env, "RESULTBUS_DATABASE_URL", d.database_url),
            database_schema=schema,
            prefetch=env_int(env, "RESULTBUS_PREFETCH", d.prefetch, minimum=1),
            batch_size=env_int(env, "RESULTBUS_BATCH_SIZE", d.batch_size, minimum=1),
            batch_wait=env_duration(env, "RESULTBUS_BATCH_WAIT", d.batch_wait),
            publish_timeout=env_duration(env, "RESULTBUS_PUBLISH_TIMEOUT", d.publish_timeout, minimum=0.1),
            quick_retries=env_durations(env, "RESULTBUS_QUICK_RETRIES", d.quick_retries),
            retry_delays=env_durations(env, "RESULTBUS_RETRY_DELAYS", d.retry_delays),
        )


def _prefix(env: Mapping[str, str]) -> str:
    prefix = env_str(env, "RESULTBUS_AMQP_PREFIX", DEFAULT_PREFIX)
    if not prefix:
        raise SettingError("RESULTBUS_AMQP_PREFIX: must not be empty")
    return prefix
