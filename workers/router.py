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

# Headers of a deferred or dead-lettered message: why, how often and since when.
ATTEMPTS = "x-resultbus-attempts"
FIRST_FAILED_AT = "x-resultbus-first-failed-at"
LAST_FAILED_AT = "x-resultbus-last-failed-at"
REASON = "x-resultbus-reason"
ROUTING_KEY = "x-resultbus-routing-key"

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
        deferrals: AbstractExchange,
    ) -> None:
        """`results` and `deferrals` (the default exchange) must be on a channel with publisher
        confirms: a message is acked only once what replaces it is safely on the broker."""
        self._settings = settings
        self._pool = pool
        self._queue = queue
        self._results = results
        self._deferrals = deferrals
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop` is set, then finishes the batch in hand and returns the rest."""
        tag = await self._queue.consume(self._receive)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                waiting = asyncio.create_task(self._inbox.get())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    waiting.cancel()
                    if waiting.done() and not waiting.cancelled():
                        await waiting.result().nack(requeue=True)
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
        error = await self._store_and_publish_retrying(items, stop)
        if error is None:
            outcomes = ["rejected" if item.raw.reason else "stored" for item in items]
        else:
            try:
                outcomes = [await self._defer(item, error) for item in items]
            except TRANSIENT as broker_error:
                # The broker is in trouble too: hand everything back; it is redelivered later.
                log.error(
                    "could not defer the batch, returning it", error=repr(broker_error), size=len(items)
                )
                for message in batch:
                    await message.nack(requeue=True)
                return
        # Every message of the channel up to the last of this batch: all of them are done with.
        await batch[-1].ack(multiple=True)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        for item, outcome in zip(items, outcomes, strict=True):
            item.log.info(
                "webhook routed",
                outcome=outcome,
                reason=item.raw.reason,
                events=len(item.events),
                batch=len(items),
                duration_ms=duration_ms,
            )

    async def _store_and_publish_retrying(
        self, items: list[Item], stop: asyncio.Event
    ) -> BaseException | None:
        """None once the batch is stored and published; the last error when quick retries ran out."""
        for delay in (*self._settings.quick_retries, None):
            try:
                await self._store_and_publish(items)
                return None
            except TRANSIENT as error:
                if delay is None or stop.is_set():
                    return error
                log.warning("batch failed, retrying", error=repr(error), size=len(items), delay=delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _defer(self, item: Item, error: BaseException) -> str:
        """Moves a message to its next delay tier, or to the dead-letter queue after the last one."""
        message = item.message
        headers = dict(message.headers or {})
        previous = headers.get(ATTEMPTS, 0)
        attempts = (previous if isinstance(previous, int) else 0) + 1
        now = datetime.now(UTC).isoformat()
        headers.setdefault(FIRST_FAILED_AT, now)
        headers.setdefault(ROUTING_KEY, message.routing_key or "")
        headers.update({ATTEMPTS: attempts, LAST_FAILED_AT: now, REASON: repr(error)[:500]})
        delays = self._settings.retry_delays
        if attempts <= len(delays):
            target, outcome = self._settings.topology.retry_queue(delays[attempts - 1]), "deferred"
        else:
            target, outcome = self._settings.topology.dead_queue, "dead-lettered"
        await self._deferrals.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                message_id=message.message_id,
                content_type=message.content_type,
                timestamp=message.timestamp,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=target,
            timeout=self._settings.publish_timeout,
        )
        return outcome

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
        id=_uuid_or_new(message.message_id),
        source=message.routing_key or "unknown",
        vendor="unknown",
        received_at=message.timestamp or datetime.now(UTC),
        content_type=message.content_type or "application/octet-stream",
        body=message.body,
        reason=reason,
    )


def _uuid_or_new(value: str | None) -> str:
    """The message's own id when it has one (so a replay of it is recognised), else a new one."""
    try:
        return str(uuid.UUID(value)) if value else str(uuid.uuid4())
    except ValueError:
        return str(uuid.uuid4())
