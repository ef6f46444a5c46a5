"""Typed errors raised while handling a message, and the failures worth trying again; the consumer
loop decides what each one means."""

import asyncpg

from common.broker import BROKER_ERRORS


class RejectedWebhook(Exception):
    """The webhook can never be processed as sent: it is stored as rejected with this reason and acked."""

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
