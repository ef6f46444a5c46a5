"""Ingress settings, read once from the environment at start-up; a bad value stops the boot."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.amqp import redact_urls
from common.env import Group, duration, integer, port, text
from common.listener import ConnectionLimits
from common.settings import AMQP_PREFIX, AMQP_URL
from ingress.processes import PROCESSES
from schemas.topology import Topology

SOURCES = text("RESULTBUS_SOURCES", "deploy/sources.example.toml", help="the sources file (TOML)")
HOST = text("RESULTBUS_INGRESS_HOST", "127.0.0.1", help="the vendor-facing listener")
PORT = port("RESULTBUS_INGRESS_PORT", 8080, help="the vendor-facing port")
CONFIRM_TIMEOUT = duration(
    "RESULTBUS_CONFIRM_TIMEOUT", 2.0, minimum=0.001, help="longest wait for a broker confirm before 503"
)
RETRY_AFTER = integer("RESULTBUS_RETRY_AFTER", 5, minimum=0, help="the Retry-After (seconds) of a 503")
# How long a boot keeps retrying an unreachable broker before giving up (0: one try).
CONNECT_TIMEOUT = duration(
    "RESULTBUS_AMQP_CONNECT_TIMEOUT", 30.0, help="how long to retry an unreachable broker at boot"
)
# A sender that takes longer than this to deliver its body gets 408 (a slow-loris guard).
READ_TIMEOUT = duration(
    "RESULTBUS_READ_TIMEOUT", 10.0, minimum=0.001, help="a body not received by then: 408"
)
# Connections (common/listener.py for what happens at the limit).
HEADER_TIMEOUT = duration(
    "RESULTBUS_HEADER_TIMEOUT",
    10.0,
    minimum=0.001,
    help="headers not complete this long after the connection opened (or a request's first byte): closed",
)
# Longer than a load balancer's own idle timeout (60 s for AWS ALB and nginx), so that the balancer,
# not the ingress, closes a pooled connection: no request races a close.
KEEPALIVE_TIMEOUT = duration(
    "RESULTBUS_KEEPALIVE_TIMEOUT", 75.0, help="a connection idle this long between requests: closed"
)
MAX_CONNECTIONS = integer(
    "RESULTBUS_MAX_CONNECTIONS", 1000, minimum=1, help="open connections per process, at most"
)

SETTINGS = Group(
    "ingress",
    (
        AMQP_URL,
        AMQP_PREFIX,
        SOURCES,
        HOST,
        PORT,
        CONFIRM_TIMEOUT,
        RETRY_AFTER,
        CONNECT_TIMEOUT,
        READ_TIMEOUT,
        HEADER_TIMEOUT,
        KEEPALIVE_TIMEOUT,
        MAX_CONNECTIONS,
        PROCESSES,
    ),
)


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
    read_timeout: float = READ_TIMEOUT.default
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Processes sharing the port (ingress/processes.py); AUTO until resolved at start-up.
    processes: int = PROCESSES.default

    @property
    def amqp_url_redacted(self) -> str:
        return redact_urls(self.amqp_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "IngressSettings":
        return cls(
            amqp_url=AMQP_URL.read(env),
            topology=Topology(AMQP_PREFIX.read(env)),
            sources_path=SOURCES.read(env),
            host=HOST.read(env),
            port=PORT.read(env),
            confirm_timeout=CONFIRM_TIMEOUT.read(env),
            retry_after=RETRY_AFTER.read(env),
            connect_timeout=CONNECT_TIMEOUT.read(env),
            read_timeout=READ_TIMEOUT.read(env),
            connections=ConnectionLimits(
                header_timeout=HEADER_TIMEOUT.read(env),
                keepalive_timeout=KEEPALIVE_TIMEOUT.read(env),
                max_connections=MAX_CONNECTIONS.read(env),
            ),
            processes=PROCESSES.read(env),
        )
