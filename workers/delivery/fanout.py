"""Fan-out: one normalized event from the results exchange becomes one delivery per matching active
subscription, stored in its place in the exam's order (store.py), and a task on the attempts queue for
each that may go now; the event is acked once those tasks are confirmed. A fan-out that stops before
then gets its event back, and publishes the tasks of the deliveries it had stored. The events in hand
are stored together, one statement for a group (batch.py), never two of one exam in a group."""

from collections.abc import Sequence

import asyncpg
import msgspec
from aio_pika.abc import AbstractIncomingMessage

from common import logs
from common.batch import Batch
from common.consumer import describe
from common.errors import Reject
from schemas.delivery import is_operational
from schemas.event import EventHead, decode_head
from subscribers.queues import TaskPublisher
from workers.delivery import metrics, store
from workers.delivery.attempts import next_task, recovering


class FanOut:
    def __init__(self, pool: asyncpg.Pool, tasks: TaskPublisher) -> None:
        self._pool = pool
        self._tasks = tasks
        self._groups: Batch[tuple[EventHead, bool], list[store.Ready]] = Batch(
            self._create_group,
            key=lambda item: (item[0].vendor, item[0].exam.key if item[0].exam else item[0].id),
        )

    async def handle(self, message: AbstractIncomingMessage) -> None:
        if is_operational(message.routing_key or ""):
            return  # our own news, never delivered to subscribers
        try:
            head = decode_head(message.body)
        except (msgspec.MsgspecError, ValueError) as error:  # ValueError: invalid UTF-8 in a string
            raise Reject(f"undeliverable event: {describe(error)}") from error
        logs.bind(event_id=str(head.id), vendor=head.vendor, source=head.source, type=head.type)
        ready = await self._groups.submit((head, recovering(message)))
        await self._tasks.now_all([next_task(r) for r in ready])
        metrics.DELIVERIES.inc(len(ready))
        logs.bind(deliveries=len(ready))

    async def _create_group(self, events: Sequence[tuple[EventHead, bool]]) -> list[list[store.Ready]]:
        async with self._pool.acquire() as conn:
            return await store.create_deliveries(conn, events)
