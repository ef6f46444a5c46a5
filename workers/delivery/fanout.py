"""Fan-out: one normalized event from the results exchange becomes one task per matching active
subscription. The event is acked only after its deliveries are stored and their tasks confirmed on
the attempts queue, so a crash in between hands the event out again (and only still-pending
deliveries get a task again)."""

import asyncio

import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractIncomingMessage

from common.consumer import describe
from common.errors import Reject
from schemas.delivery import DeliveryTask, is_operational
from subscribers.queues import TaskPublisher
from workers.delivery import metrics, store


class EventHead(msgspec.Struct, frozen=True):
    """The fields of a ResultEvent that matching needs; the body itself is forwarded untouched."""

    id: str
    vendor: str
    source: str
    type: str


_head = msgspec.json.Decoder(EventHead)


class FanOut:
    def __init__(self, pool: asyncpg.Pool, tasks: TaskPublisher) -> None:
        self._pool = pool
        self._tasks = tasks

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Stores the event's deliveries, then publishes their tasks; raises when either fails, and
        the event comes back: its pending, never-attempted deliveries are then handed out again."""
        if is_operational(message.routing_key or ""):
            return  # our own news, never delivered to subscribers
        try:
            head = _head.decode(message.body)
        except (msgspec.MsgspecError, ValueError) as error:  # ValueError: invalid UTF-8 in a string
            raise Reject(f"undeliverable event: {describe(error)}") from error
        structlog.contextvars.bind_contextvars(event_id=head.id, vendor=head.vendor, source=head.source)
        async with self._pool.acquire() as conn:
            subscriptions = await store.match(conn, head.vendor, head.source, head.type)
            recovering = bool(message.redelivered or (message.headers or {}).get("x-delivery-count"))
            pending = (
                await store.create_deliveries(conn, subscriptions, head.id, head.type, recovering=recovering)
                if subscriptions
                else []
            )
        await asyncio.gather(
            *(
                self._tasks.now(
                    DeliveryTask(
                        delivery_id=d, subscription_id=s, event_id=head.id, body=message.body, made=0
                    )
                )
                for d, s in pending
            )
        )
        metrics.DELIVERIES.inc(len(pending))
        structlog.contextvars.bind_contextvars(type=head.type, deliveries=len(pending))
