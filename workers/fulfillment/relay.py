"""Publishes the orders' changes from their history (the outbox, common/itep/orders.py) on the
results exchange, as `resultbus.itep.order.<change>`: at least once, each with a stable
`message_id`. Rows are locked while published, so any number of workers can run this side by side."""

import asyncio
import contextlib

import asyncpg
import structlog
from aio_pika.abc import AbstractExchange

from common.broker import persistent_message
from common.errors import TRANSIENT
from common.itep.orders import mark_published, unpublished
from workers.fulfillment.metrics import PUBLISHED

log = structlog.get_logger("fulfillment")

_BATCH = 200


class Relay:
    def __init__(
        self, pool: asyncpg.Pool, results: AbstractExchange, *, interval: float, timeout: float
    ) -> None:
        self._pool = pool
        self._results = results
        self._interval = interval
        self._timeout = timeout

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                while await self.publish_once() == _BATCH and not stopping.is_set():
                    pass
            except TRANSIENT as error:
                log.warning("publishing order changes failed, trying again", error=repr(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await stopping.wait()

    async def publish_once(self) -> int:
        """Publishes what is waiting (up to a batch); returns how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            waiting = await unpublished(conn, _BATCH)
            for change in waiting:
                await self._results.publish(
                    persistent_message(change.body, message_id=change.id, content_type="application/json"),
                    routing_key=change.routing_key,
                    timeout=self._timeout,
                )
            if waiting:
                await mark_published(conn, [c.id for c in waiting])
        PUBLISHED.inc(len(waiting))
        return len(waiting)
