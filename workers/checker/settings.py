"""Checker settings, read once from the environment at start-up."""

from collections.abc import Mapping

import msgspec

from common.env import env_duration, env_flag, env_int


class CheckerSettings(msgspec.Struct, frozen=True, kw_only=True):
    # Inspera's rhythm: a verification call every 8 hours, and 3 failures in a row (so at least 16
    # hours dead) before the subscriptions on an endpoint are dropped.
    interval: float = 8 * 3600.0
    timeout: float = 10.0  # one verification call, connect to last byte
    failures: int = 3  # consecutive failed checks that unsubscribe
    concurrency: int = 32  # checks in flight per checker process
    # How often the loop looks for due endpoints. Endpoints fall due at different times (each one
    # `interval` after its last check; a new one at once), so this, not `interval`, is the loop's beat.
    poll: float = 60.0
    batch: int = 500  # endpoints claimed per round; a full batch is followed by another round at once
    max_response_bytes: int = 1024
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "CheckerSettings":
        d = cls()
        return cls(
            interval=env_duration(env, "RESULTBUS_CHECK_INTERVAL", d.interval, minimum=0.001),
            timeout=env_duration(env, "RESULTBUS_CHECK_TIMEOUT", d.timeout, minimum=0.001),
            failures=env_int(env, "RESULTBUS_CHECK_FAILURES", d.failures, minimum=1),
            concurrency=env_int(env, "RESULTBUS_CHECK_CONCURRENCY", d.concurrency, minimum=1),
            poll=env_duration(env, "RESULTBUS_CHECK_POLL", d.poll, minimum=0.001),
            batch=env_int(env, "RESULTBUS_CHECK_BATCH", d.batch, minimum=1),
            allow_private=env_flag(env, "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS"),
        )
