"""Sending a subscription's deliveries again, for the admin API and the console alike: each becomes
pending and gets a task for its next attempt, at the start of a new retry series."""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog

from admin import store
from common.errors import TRANSIENT
from schemas.delivery import Attempt

log = structlog.get_logger("admin")


class TaskSink(Protocol):
    """Where replays go: the delivery workers' attempts queue (subscribers.queues.TaskPublisher)."""

    async def now_all(self, tasks: Sequence[Attempt]) -> None: ...


class UnknownEvent(Exception):
    pass


class BeingAttempted(Exception):
    """The delivery is being attempted right now: a replay would send it twice at once."""


async def replay(
    pool: asyncpg.Pool,
    tasks: TaskSink,
    subscription_id: str,
    *,
    event_id: str | None = None,
    since: datetime | None = None,
) -> list[str]:
    """The event's delivery (`event_id`), or every failed one since `since`, sent again; returns the
    delivery ids. Raises UnknownEvent for an event that is not stored."""
    async with pool.acquire() as conn:
        if event_id is not None:
            found = await store.replay_one(conn, subscription_id, event_id)
            if found is None:
                raise UnknownEvent(event_id)
            if not found:
                raise BeingAttempted(event_id)
            todo = found
        else:
            assert since is not None
            todo = await store.replay_failed(conn, subscription_id, since)
    # A waiting one gets its task when the delivery before it in its exam's order is settled.
    pending = [(d, e, made) for d, e, made, status in todo if status == "pending"]
    try:
        await tasks.now_all(
            [
                Attempt(delivery_id=d, subscription_id=subscription_id, event_id=e, attempt=made + 1)
                for d, e, made in pending
            ]
        )
    except TRANSIENT:
        # Pending without a task would wait for ever: they are failed again (a task that was
        # published finds its delivery failed and does nothing), for the next replay to find.
        async with pool.acquire() as conn:
            await store.unqueue(conn, [d for d, *_ in pending])
        raise
    log.info("replay queued", subscription_id=subscription_id, deliveries=len(todo), now=len(pending))
    return [d for d, *_ in todo]
