"""Checker settings, read once from the environment at start-up."""

from collections.abc import Mapping

import msgspec

from common.env import Group, duration, integer
from common.settings import BROKER_AND_DATABASE
from subscribers.settings import ALLOW_PRIVATE_ENDPOINTS

# Inspera's rhythm: a verification call every 8 hours, and 3 failures in a row (so at least 16
# hours dead) before the subscriptions on an endpoint are dropped.
INTERVAL = duration(
    "RESULTBUS_CHECK_INTERVAL", 8 * 3600.0, minimum=0.001, help="between two checks of one endpoint"
)
TIMEOUT = duration(
    "RESULTBUS_CHECK_TIMEOUT", 10.0, minimum=0.001, help="one verification call, connect to last byte"
)
FAILURES = integer("RESULTBUS_CHECK_FAILURES", 3, minimum=1, help="failures in a row that unsubscribe")
CONCURRENCY = integer("RESULTBUS_CHECK_CONCURRENCY", 32, minimum=1, help="calls in flight per checker")
# Endpoints fall due at different times (each one `interval` after its last check; a new one at
# once), so this, not the interval, is the loop's beat.
POLL = duration("RESULTBUS_CHECK_POLL", 60.0, minimum=0.001, help="how often it looks for due endpoints")
BATCH = integer("RESULTBUS_CHECK_BATCH", 500, minimum=1, help="endpoints claimed per round")

SETTINGS = (
    BROKER_AND_DATABASE,
    Group("checker", (INTERVAL, TIMEOUT, FAILURES, CONCURRENCY, POLL, BATCH, ALLOW_PRIVATE_ENDPOINTS)),
)


class CheckerSettings(msgspec.Struct, frozen=True, kw_only=True):
    interval: float = INTERVAL.default
    timeout: float = TIMEOUT.default  # one verification call, connect to last byte
    failures: int = FAILURES.default  # consecutive failed checks that unsubscribe
    concurrency: int = CONCURRENCY.default  # checks in flight per checker process
    poll: float = POLL.default
    # Endpoints claimed per round; a full batch is followed by another round at once.
    batch: int = BATCH.default
    max_response_bytes: int = 1024
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CheckerSettings":
        return cls(
            interval=INTERVAL.read(env),
            timeout=TIMEOUT.read(env),
            failures=FAILURES.read(env),
            concurrency=CONCURRENCY.read(env),
            poll=POLL.read(env),
            batch=BATCH.read(env),
            allow_private=ALLOW_PRIVATE_ENDPOINTS.read(env),
        )
