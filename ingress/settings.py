"""Ingress settings, read once from the environment at start-up; a bad value stops the boot."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.amqp import env_amqp_url, redact_urls
from common.env import SettingError, env_duration, env_int, env_str
from common.listener import ConnectionLimits
from schemas.topology import DEFAULT_PREFIX, Topology


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressSettings:
    # The URL may carry the broker password: kept out of the repr.
    amqp_url: str = field(repr=False)
    topology: Topology
    sources_path: str
    host: str
    port: int
    confirm_timeout: float
    retry_after: int
    connect_timeout: float
    # A sender that takes longer than this to deliver its body gets 408 (a slow-loris guard).
    read_timeout: float = 10.0
    # Headers not complete this long after the connection opened (or a later request's first byte):
    # closed. Idle between requests this long: closed. At most this many connections: see
    # common/listener.py for what happens at the limit.
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)

    @property
    def amqp_url_redacted(self) -> str:
        return redact_urls(self.amqp_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "IngressSettings":
        port = env_int(env, "RESULTBUS_INGRESS_PORT", 8080, minimum=1)
        if port > 65535:
            raise SettingError(f"RESULTBUS_INGRESS_PORT: must be at most 65535, got {port}")
        prefix = env_str(env, "RESULTBUS_AMQP_PREFIX", DEFAULT_PREFIX)
        if not prefix:
            raise SettingError("RESULTBUS_AMQP_PREFIX: must not be empty")
        confirm_timeout = env_duration(env, "RESULTBUS_CONFIRM_TIMEOUT", 2.0, minimum=0.001)
        return cls(
            amqp_url=env_amqp_url(env),
            topology=Topology(prefix),
            sources_path=env_str(env, "RESULTBUS_SOURCES", "deploy/sources.example.toml"),
            host=env_str(env, "RESULTBUS_INGRESS_HOST", "127.0.0.1"),
            port=port,
            confirm_timeout=confirm_timeout,
            retry_after=env_int(env, "RESULTBUS_RETRY_AFTER", 5, minimum=0),
            # How long a boot keeps retrying an unreachable broker before giving up (0: one try).
            connect_timeout=env_duration(env, "RESULTBUS_AMQP_CONNECT_TIMEOUT", 30.0),
            read_timeout=env_duration(env, "RESULTBUS_READ_TIMEOUT", 10.0, minimum=0.001),
            connections=ConnectionLimits(
                header_timeout=env_duration(env, "RESULTBUS_HEADER_TIMEOUT", 10.0, minimum=0.001),
                # Longer than a load balancer's own idle timeout (60 s for AWS ALB and nginx), so that
                # the balancer, not the ingress, closes a pooled connection: no request races a close.
                keepalive_timeout=env_duration(env, "RESULTBUS_KEEPALIVE_TIMEOUT", 75.0),
                max_connections=env_int(env, "RESULTBUS_MAX_CONNECTIONS", 1000, minimum=1),
            ),
        )
