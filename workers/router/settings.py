"""The router's own settings, beside the broker and database settings every worker reads."""

from collections.abc import Mapping

import msgspec

from common.env import Group, duration, durations, integer
from common.settings import BROKER_AND_DATABASE, RETRY_DELAYS, WorkerSettings

PREFETCH = integer("RESULTBUS_PREFETCH", 512, minimum=1, help="raw webhooks in flight per router")
BATCH_SIZE = integer("RESULTBUS_BATCH_SIZE", 256, minimum=1, help="webhooks stored per transaction, at most")
BATCH_WAIT = duration(
    "RESULTBUS_BATCH_WAIT", 0.0, help="while webhooks stream in, how long a batch not full waits for more"
)
QUICK_RETRIES = durations("RESULTBUS_QUICK_RETRIES", (0.2, 1.0), help="in-process retries of a failed batch")

SETTINGS = (
    BROKER_AND_DATABASE,
    Group("router", (PREFETCH, BATCH_SIZE, BATCH_WAIT, QUICK_RETRIES, RETRY_DELAYS)),
)


class RouterSettings(WorkerSettings, frozen=True, kw_only=True):
    prefetch: int = PREFETCH.default
    batch_size: int = BATCH_SIZE.default
    # How long a batch that is not full may wait for more webhooks while they are streaming in (0: not
    # at all): fewer, larger transactions under load, at the price of up to this much latency.
    batch_wait: float = BATCH_WAIT.default
    # In-process retries of a failed batch, for blips (a failover, a dropped connection)...
    quick_retries: tuple[float, ...] = QUICK_RETRIES.default
    # ...then each message waits in the broker's delay tiers, and after the last lands in the
    # dead-letter queue.
    retry_delays: tuple[float, ...] = RETRY_DELAYS.default

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RouterSettings":
        return cls(
            **msgspec.structs.asdict(WorkerSettings.from_env(env)),
            prefetch=PREFETCH.read(env),
            batch_size=BATCH_SIZE.read(env),
            batch_wait=BATCH_WAIT.read(env),
            quick_retries=QUICK_RETRIES.read(env),
            retry_delays=RETRY_DELAYS.read(env),
        )
