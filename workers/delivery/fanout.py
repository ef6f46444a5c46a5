"""Fan-out: one normalized event from the results exchange becomes one task per matching active
subscription. The event is acked only after its deliveries are stored and their tasks confirmed on
the attempts queue, so a crash in between hands the event out again (and only still-pending
deliveries get a task again)."""

import asyncio
import time

import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractIncomingMessage

from common.errors import TRANSIENT
from schemas.delivery import DeliveryTask, is_operational
from workers.delivery import store
from workers.delivery.broker import TaskPublisher, requeue_pause

log = structlog.get_logger("delivery")


class EventHead(msgspec.Struct, frozen=True):
    """The fields of a ResultEvent that matching needs; the body itself is forwarded untouched."""

    id: str
    vendor: str
    source: str
    type: str


_head = msgspec.json.Decoder(EventHead)


class FanOut:
    def __init__(self, pool: asyncpg.Pool, tasks: TaskPublisher, *, pause: float = 1.0) -> None:
        self._pool = pool
        self._tasks = tasks
        self._pause = pause

    async def handle(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        if is_operational(message.routing_key or ""):
            await message.ack()  # our own news, never delivered to subscribers
            return
        try:
            head = _head.decode(message.body)
        except msgspec.MsgspecError as error:
            log.error("undeliverable event dropped", error=str(error), routing_key=message.routing_key)
            await message.ack()
            return
        structlog.contextvars.bind_contextvars(event_id=head.id, vendor=head.vendor, source=head.source)
        try:
            async with self._pool.acquire() as conn:
                subscriptions = await store.match(conn, head.vendor, head.source, head.type)
                recovering = bool(message.redelivered or (message.headers or {}).get("x-delivery-count"))
                pending = (
                    await store.create_deliveries(
                        conn, subscriptions, head.id, head.type, recovering=recovering
                    )
                    if subscriptions
                    else []
                )
            await asyncio.gather(
                *(
                    self._tasks.now(
                        DeliveryTask(delivery_id=d, subscription_id=s, event_id=head.id, body=message.body)
                    )
                    for d, s in pending
                )
            )
        except TRANSIENT as error:
            log.warning("fan-out failed, event returned to the queue", error=repr(error))
            await asyncio.sleep(requeue_pause(message, self._pause))
            await message.nack(requeue=True)
            return
        await message.ack()
        log.info(
            "event fanned out",
            type=head.type,
            deliveries=len(pending),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
