"""What a handler may raise, for the consumer runtime (common/consumer.py) and the HTTP middlewares
to turn into an outcome. Anything else a handler raises is a bug, and is an outcome too."""

import asyncpg

from common.broker import BROKER_ERRORS


class Retry(Exception):
    """Not now: the message goes back (after `after` seconds when given) and is handled again."""

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class Reject(Exception):
    """Never as it is: the message is set aside with this reason (a dead-letter queue, or a stored
    rejection), where an operator can read it and replay it after a fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Failures of the database or the broker themselves, not of the data: worth trying again later.
TRANSIENT = (
    *BROKER_ERRORS,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.TooManyConnectionsError,
)
