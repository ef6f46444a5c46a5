"""The router: raw queue -> PostgreSQL -> results exchange.

Messages are taken in batches (whatever has arrived while the previous batch was being stored), so
one transaction and one round of publisher confirms serve many webhooks. A message is acked only
after its webhook is committed and its events are confirmed on the results exchange.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue

from schemas.envelope import decode_envelope
from workers.db import DbConn
from workers.errors import RejectedWebhook, RetryableError
from workers.normalize import normalize
from workers.settings import WorkerSettings
from workers.store import Outgoing, RawRow, mark_published, store_batch
from workers.vendors.base import Normalized

log = structlog.get_logger("router")

# Failures of the database or the broker themselves, not of the data: worth trying again later.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.TooManyConnectionsError,
    aio_pika.exceptions.AMQPError,
    RetryableError,
)


class Item(msgspec.Struct):
    """One message of a batch and what became of it."""

    message: AbstractIncomingMessage
    raw: RawRow
    events: list[Normalized]
    log: structlog.stdlib.BoundLogger


class Router:
    def __init__(
        self,
        settings: WorkerSettings,
        pool: asyncpg.Pool,
        queue: AbstractQueue,
        results: AbstractExchange,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._queue = queue
        self._results = results
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop` is set, then finishes the batch in hand and returns the rest."""
        tag = await self._queue.consume(self._receive)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                waiting = asyncio.create_task(self._inbox.get())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    break
                batch = [waiting.result()]
                while len(batch) < self._settings.batch_size and not self._inbox.empty():
                    batch.append(self._inbox.get_nowait())
                await self.handle(batch, stop)
        finally:
            stopping.cancel()
            await self._queue.cancel(tag)
            while not self._inbox.empty():
                await self._inbox.get_nowait().nack(requeue=True)

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def handle(self, batch: list[AbstractIncomingMessage], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        items = [self._decode(message) for message in batch]
        for attempt, delay in enumerate((*self._settings.retry_delays, None)):
            try:
                await self._store_and_publish(items)
                break
            except TRANSIENT as error:
                if delay is None or stop.is_set():
                    # Returned to the queue: stored rows are idempotent, so a redelivery is safe.
                    log.error("batch returned to the queue", error=repr(error), size=len(items))
                    for item in items:
                        await item.message.nack(requeue=True)
                    return
                log.warning("batch failed, retrying", error=repr(error), attempt=attempt + 1, delay=delay)
                await asyncio.sleep(delay)
        # Every message of the channel up to the last of this batch: all of them are done.
        await batch[-1].ack(multiple=True)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        for item in items:
            item.log.info(
                "webhook routed",
                outcome="rejected" if item.raw.reason else "stored",
                reason=item.raw.reason,
                events=len(item.events),
                batch=len(items),
                duration_ms=duration_ms,
            )

    def _decode(self, message: AbstractIncomingMessage) -> Item:
        try:
            envelope = decode_envelope(message.body)
        except msgspec.MsgspecError as error:
            raw = _unreadable(message, f"envelope: {error}")
            return Item(message, raw, [], log.bind(webhook_id=raw.id))
        bound = log.bind(webhook_id=envelope.id, source=envelope.source, vendor=envelope.vendor.value)
        try:
            return Item(message, RawRow.of(envelope), normalize(envelope), bound)
        except RejectedWebhook as rejection:
            return Item(message, RawRow.of(envelope, rejection.reason), [], bound)

    async def _store_and_publish(self, items: list[Item]) -> None:
        async with self._pool.acquire() as conn:
            try:
                outgoing = await store_batch(
                    conn, [i.raw for i in items], [e for i in items for e in i.events]
                )
            except asyncpg.PostgresError as error:
                if isinstance(error, TRANSIENT):
                    raise
                # The data itself upset the database (a NUL byte PostgreSQL's jsonb refuses, say):
                # find the culprits one by one rather than failing the whole batch for ever.
                outgoing = await self._store_one_by_one(conn, items)
        await self._publish(outgoing)
        if outgoing:
            try:
                async with self._pool.acquire() as conn:
                    await mark_published(conn, [o.id for o in outgoing])
            except TRANSIENT as error:
                # Published but not marked: a redelivery would publish again, which at-least-once allows.
                log.warning("could not mark events published", error=repr(error))

    async def _store_one_by_one(self, conn: DbConn, items: list[Item]) -> list[Outgoing]:
        outgoing: list[Outgoing] = []
        for index, item in enumerate(items):
            try:
                outgoing.extend(await store_batch(conn, [item.raw], item.events))
            except asyncpg.PostgresError as error:
                if isinstance(error, TRANSIENT):
                    raise
                reason = f"database refused the webhook: {type(error).__name__}: {error}"
                items[index] = Item(
                    item.message, msgspec.structs.replace(item.raw, reason=reason), [], item.log
                )
                await store_batch(conn, [items[index].raw], [])
        return outgoing

    async def _publish(self, outgoing: list[Outgoing]) -> None:
        if not outgoing:
            return
        timeout = self._settings.publish_timeout
        await asyncio.gather(
            *(
                self._results.publish(
                    aio_pika.Message(
                        o.body,
                        message_id=o.id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=o.routing_key,
                    timeout=timeout,
                )
                for o in outgoing
            )
        )


def _unreadable(message: AbstractIncomingMessage, reason: str) -> RawRow:
    """A message that is not a raw envelope at all is still kept, with what the broker knows of it."""
    return RawRow(
        id=str(uuid.uuid4()),
        source=message.routing_key or "unknown",
        vendor="unknown",
        received_at=message.timestamp or datetime.now(UTC),
        content_type=message.content_type or "application/octet-stream",
        body=message.body,
        reason=reason,
    )
