"""Fan-out: one normalized event from the results exchange becomes one delivery per matching active
subscription, and each delivery's first attempt is made here (attempts.py: `Attempts.first`). The
event is acked only after its deliveries are stored and their first attempts recorded and followed
up (or handed over to a task), so a crash in between hands the event out again: its deliveries are
then handed out as tasks, never attempted a second time by the fan-out."""

import asyncio
from collections.abc import Awaitable

import asyncpg
import msgspec
from aio_pika.abc import AbstractIncomingMessage

from common import logs
from common.consumer import describe
from common.errors import Reject
from schemas.delivery import DeliveryTask, is_operational
from subscribers.queues import TaskPublisher
from workers.delivery import metrics, store
from workers.delivery.attempts import Attempts


class EventHead(msgspec.Struct, frozen=True):
    """The fields of a ResultEvent that matching needs; the body itself is forwarded untouched."""

    id: str
    vendor: str
    source: str
    type: str


_head = msgspec.json.Decoder(EventHead)


class FanOut:
    def __init__(self, pool: asyncpg.Pool, tasks: TaskPublisher, attempts: Attempts) -> None:
        self._pool = pool
        self._tasks = tasks
        self._attempts = attempts

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Stores the event's deliveries, then makes their first attempts; raises when either fails,
        and the event comes back: what its deliveries still need is then handed out as tasks."""
        if is_operational(message.routing_key or ""):
            return  # our own news, never delivered to subscribers
        try:
            head = _head.decode(message.body)
        except (msgspec.MsgspecError, ValueError) as error:  # ValueError: invalid UTF-8 in a string
            raise Reject(f"undeliverable event: {describe(error)}") from error
        logs.bind(event_id=head.id, vendor=head.vendor, source=head.source)
        recovering = bool(message.redelivered or (message.headers or {}).get("x-delivery-count"))
        async with self._pool.acquire() as conn:
            pending = await store.create_deliveries(
                conn, head.vendor, head.source, head.type, head.id, recovering=recovering
            )
        work: list[Awaitable[None]] = []
        for new in pending:
            task = DeliveryTask(
                delivery_id=new.delivery_id,
                subscription_id=new.subscription_id,
                event_id=head.id,
                body=message.body,
                made=0,
            )
            if recovering or new.target is None:
                # An earlier fan-out may have attempted it, or be attempting it still: a guard makes
                # the attempt if none is recorded and follows it up if one is.
                work.append(self._tasks.now(msgspec.structs.replace(task, guard=True)))
            else:
                work.append(self._attempts.first(task, new.target))
        # Every delivery settles before the event does, whatever one of them raised.
        for outcome in await asyncio.gather(*work, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        metrics.DELIVERIES.inc(len(pending))
        logs.bind(type=head.type, deliveries=len(pending))
