"""The router: raw queue -> PostgreSQL -> results exchange.

Messages are taken in batches (whatever has arrived while the previous batch was being handled), so
one transaction and one round of publisher confirms serve many webhooks. With `batch_wait` set, a
batch that is not full waits up to that long for company, but only while webhooks are streaming in
(the previous batch had more than one): a webhook arriving alone is taken at once. Two stages overlap: while
batch N waits for its publisher confirms, batch N+1 is decoded and stored. Acks stay in order, and a
message is acked only after its webhook is committed and its events are confirmed on the results
exchange.
"""

import asyncio
import collections
import contextlib
import hashlib
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

import aiormq
import asyncpg
import msgspec
import prometheus_client
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustChannel
from aiormq import spec
from aiormq.abc import DeliveredMessage

from common import tracing
from common.broker import BROKER_ERRORS, republished
from common.consumer import (
    ATTEMPTS,
    REPLAYED,
    ROUTING_KEY,
    UNEXPECTED_ERRORS,
    Verdict,
    decide,
    describe,
    failure_headers,
    settled,
)
from common.db import DbConn
from common.errors import TRANSIENT
from schemas.envelope import decode_envelope
from schemas.topology import delay_ms
from vendors.base import Normalized, RejectedWebhook
from workers.router import suspects
from workers.router.normalize import normalize
from workers.router.quick_retries import quickly_retried
from workers.router.settings import RouterSettings
from workers.router.store import Outgoing, RawRow, store_batch

log = structlog.get_logger("router")

_PERSISTENT = 2  # AMQP delivery mode

ROUTED = prometheus_client.Counter(
    "resultbus_router_webhooks",
    "Raw webhooks handled, by outcome (stored, rejected, deferred, dead-lettered).",
    ["outcome"],
)
REJECTIONS = prometheus_client.Counter(
    "resultbus_rejections",
    "Webhooks stored as rejected, by vendor and kind: `expected` (the vendor sent what its documents "
    "rule out), `unexpected` (an exception of no expected type: a bug of ours to look at), `poison` "
    "(it ended the router while being processed).",
    ["vendor", "kind"],
)
PUBLISHED = prometheus_client.Counter(
    "resultbus_router_events_published", "Events confirmed on the results exchange."
)
BATCH_SECONDS = prometheus_client.Histogram(
    "resultbus_router_batch_seconds",
    "From taking a batch to acking it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class Item(msgspec.Struct):
    """One message of a batch and what became of it."""

    message: DeliveredMessage
    raw: RawRow
    events: list[Normalized]


class Stored(msgspec.Struct):
    """A batch after the first stage: stored (with its events still to publish), or not (`error`)."""

    messages: list[DeliveredMessage]
    items: list[Item]
    started: float
    outgoing: list[Outgoing]
    error: BaseException | None
    spans: list[tracing.Span] | None = None  # one per item, while tracing is on


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        pool: asyncpg.Pool,
        consuming: AbstractChannel,
        publishing: AbstractChannel,
    ) -> None:
        """`consuming` carries the prefetch (its QoS); `publishing` must have publisher confirms (a
        message is acked only once what replaces it is safely on the broker). The raw queue and the
        results exchange must be declared."""
        self._settings = settings
        self._pool = pool
        self._consuming = consuming
        self._publishing = publishing
        self._deferrals = publishing.default_exchange
        self._inbox: collections.deque[DeliveredMessage] = collections.deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()  # the inbox holds a whole batch
        self._last_size = 0  # of the batch taken before
        self._consumer: tuple[aiormq.abc.AbstractChannel, str] | None = None

    async def _consume(self, *_: object) -> None:
        """Consumes on the AMQP channel itself: aio-pika's per-message wrapper (a task and an object
        copying every property) is a tenth of the router's time. After a reconnect the robust
        channel calls this again; a message still held from the old channel can only be acked on
        that channel, which fails harmlessly: the broker has requeued it."""
        channel = await self._consuming.get_underlay_channel()
        ok = await channel.basic_consume(self._settings.topology.raw_queue, self._receive)
        assert ok.consumer_tag is not None
        self._consumer = (channel, ok.consumer_tag)

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop` is set, then finishes the batches in hand and returns the rest."""
        await self._consume()
        if isinstance(self._consuming, AbstractRobustChannel):
            self._consuming.reopen_callbacks.add(self._consume)
        stopping = asyncio.create_task(stop.wait())
        finishing: asyncio.Task[None] | None = None
        try:
            while (batch := await self._next_batch(stopping)) is not None:
                stored = await self._store(batch, stop)
                if finishing is not None:
                    await finishing  # batch N is acked before batch N+1
                finishing = asyncio.create_task(self._finish(stored, stop))
            # Stop the broker sending more before draining, or the prefetch refills meanwhile and
            # every message of it goes back marked redelivered.
            await self._stop_consuming()
            if finishing is not None:
                await finishing
        except asyncio.CancelledError:
            # Past the shutdown timeout: whatever is unacked goes back when the channel closes.
            if finishing is not None:
                finishing.cancel()
            raise
        finally:
            stopping.cancel()
            await self._stop_consuming()
            while self._inbox:
                await settled(_returned(self._inbox.popleft()))

    async def _stop_consuming(self) -> None:
        if isinstance(self._consuming, AbstractRobustChannel):
            self._consuming.reopen_callbacks.discard(self._consume)
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not consumer[0].is_closed:
            with contextlib.suppress(*BROKER_ERRORS):
                await consumer[0].basic_cancel(consumer[1])

    async def _receive(self, message: DeliveredMessage) -> None:
        self._inbox.append(message)
        self._arrived.set()
        if len(self._inbox) >= self._settings.batch_size:
            self._full.set()

    async def _next_batch(self, stopping: asyncio.Task[bool]) -> list[DeliveredMessage] | None:
        """Waits for one message, then takes whatever else has arrived, up to the batch size.

        A message the broker delivered before (the router holding it died, or it was returned) is a
        batch of its own, and is never batched with others: if it is what killed the router, it is
        found alone (see `_suspect`) and its neighbours are stored without it."""
        while not self._inbox and not stopping.done():
            self._arrived.clear()
            waiting = asyncio.create_task(self._arrived.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        wait = self._settings.batch_wait
        if (
            wait > 0
            and self._last_size > 1
            and not stopping.done()
            and len(self._inbox) < self._settings.batch_size
            and not self._inbox[0].redelivered
        ):
            self._full.clear()
            filled = asyncio.create_task(self._full.wait())
            await asyncio.wait({filled, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            filled.cancel()
        if stopping.done():
            return None  # what is in the inbox goes back to the queue
        batch = [self._inbox.popleft()]
        if not batch[0].redelivered:
            while len(batch) < self._settings.batch_size and self._inbox and not self._inbox[0].redelivered:
                batch.append(self._inbox.popleft())
        self._last_size = len(batch)
        return batch

    # --- stage one: decode and store ------------------------------------------------------------

    async def _store(self, batch: list[DeliveredMessage], stop: asyncio.Event) -> Stored:
        started = time.perf_counter()
        poison = batch[0].redelivered and await self._suspect(batch[0])
        items = [_poison(batch[0], poison)] if poison else [_decode(message) for message in batch]
        spans = _spans(items) if tracing.ENABLED else None
        try:
            outgoing = await quickly_retried(
                lambda: self._store_items(items),
                self._settings.quick_retries,
                stop=stop,
                failing="storing",
                size=len(items),
            )
        except TRANSIENT as error:
            return Stored(batch, items, started, [], error, spans)
        return Stored(batch, items, started, outgoing, None, spans)

    async def _suspect(self, message: DeliveredMessage) -> int | None:
        """Notes, durably and before touching it, that this redelivered message is being processed;
        returns how often it was before without finishing (the router died each time) once that
        reaches the limit, else None. The mark is cleared when the message is stored."""
        key = _suspect_key(message)

        async def mark() -> int:
            async with self._pool.acquire() as conn:
                return await suspects.mark(conn, key)

        try:
            started = await quickly_retried(mark, self._settings.quick_retries)
        except TRANSIENT as error:
            # No mark without the database: process it as usual (it is a singleton batch).
            log.warning("could not mark a redelivered message", error=repr(error))
            return None
        return started - 1 if started > _POISON_LIMIT else None

    async def _store_items(self, items: list[Item]) -> list[Outgoing]:
        async with self._pool.acquire() as conn:
            try:
                events = [e for i in items for e in i.events]
                outgoing = await store_batch(
                    conn, [i.raw for i in items], events, republish=_seen_before(items)
                )
            except Exception as error:
                if decide(error).verdict is Verdict.RETRY:
                    raise
                # The data itself upset the database (a NUL byte PostgreSQL's jsonb refuses, say),
                # or our code: find the culprits one by one rather than failing the whole batch.
                outgoing = await self._store_one_by_one(conn, items)
            if items[0].message.redelivered:
                await suspects.clear(conn, _suspect_key(items[0].message))
            return outgoing

    async def _store_one_by_one(self, conn: DbConn, items: list[Item]) -> list[Outgoing]:
        outgoing: list[Outgoing] = []
        for index, item in enumerate(items):
            try:
                outgoing.extend(
                    await store_batch(conn, [item.raw], item.events, republish=_seen_before([item]))
                )
            except Exception as error:
                decision = decide(error)
                if decision.verdict is Verdict.RETRY:
                    raise
                if isinstance(error, asyncpg.PostgresError):
                    reason, kind = f"database refused the webhook: {describe(error)}", "expected"
                else:
                    reason, kind = f"storing failed: {decision.reason}", "unexpected"
                    UNEXPECTED_ERRORS.labels("router").inc()
                    log.error("storing a webhook failed unexpectedly", webhook_id=item.raw.id, exc_info=error)
                REJECTIONS.labels(item.raw.vendor, kind).inc()
                items[index] = Item(item.message, msgspec.structs.replace(item.raw, reason=reason), [])
                await store_batch(conn, [items[index].raw], [])
        return outgoing

    # --- stage two: publish, then ack -----------------------------------------------------------

    async def _finish(self, stored: Stored, stop: asyncio.Event) -> None:
        try:
            await self._finish_batch(stored, stop)
        finally:
            # Cancelled at the end of a drain, or a bug: the spans still say what became of them.
            for span in stored.spans or ():
                if span.is_recording():
                    tracing.end(span, error="not finished: the batch goes back to the queue")

    async def _finish_batch(self, stored: Stored, stop: asyncio.Event) -> None:
        error = stored.error
        if error is None:
            error = await self._publish_retrying(stored.outgoing, stop, _carried(stored))
        if error is None:
            outcomes = ["rejected" if item.raw.reason else "stored" for item in stored.items]
            PUBLISHED.inc(len(stored.outgoing))
        else:
            # Stored rows are idempotent, and a message that comes back publishes its stored events
            # again (`_seen_before`), so it can simply come back later.
            try:
                outcomes = [await self._defer(item, error) for item in stored.items]
            except TRANSIENT as broker_error:
                log.error("could not defer the batch, returning it", error=repr(broker_error))
                for message in stored.messages:
                    await settled(_returned(message))
                for span in stored.spans or ():
                    tracing.end(span, error=f"returned: {describe(broker_error)}")
                return
        # Every message of the channel up to the last of this batch: all of them are done with.
        await settled(_acked_up_to(stored.messages[-1]))
        seconds = time.perf_counter() - stored.started
        BATCH_SECONDS.observe(seconds)
        for outcome, count in Counter(outcomes).items():
            ROUTED.labels(outcome).inc(count)
        duration_ms = round(seconds * 1000, 2)
        for span, outcome in zip(stored.spans or (), outcomes, strict=False):
            tracing.end(span, attributes={"resultbus.outcome": outcome})
        for item, outcome in zip(stored.items, outcomes, strict=True):
            # A rejection is a result that did not get through: an operator looks at each one.
            log.log(
                _LEVELS.get(outcome, 20),
                "webhook routed",
                webhook_id=item.raw.id,
                source=item.raw.source,
                vendor=item.raw.vendor,
                outcome=outcome,
                reason=item.raw.reason,
                events=len(item.events),
                batch=len(stored.items),
                duration_ms=duration_ms,
            )

    async def _publish_retrying(
        self, outgoing: list[Outgoing], stop: asyncio.Event, carried: dict[str, dict[str, Any]]
    ) -> BaseException | None:
        try:
            await quickly_retried(
                lambda: self._publish(outgoing, carried),
                self._settings.quick_retries,
                stop=stop,
                failing="publishing",
            )
        except TRANSIENT as error:
            return error
        return None

    async def _publish(self, outgoing: list[Outgoing], carried: dict[str, dict[str, Any]]) -> None:
        """`carried`: the AMQP headers of each event (by id) that has a trace to continue."""
        if not outgoing:
            return
        # Straight on the AMQP channel: aio-pika's Message wrapper costs a quarter of a publish, and
        # this is one publish per event. `wait=False` skips waiting for the socket write; the
        # broker's confirm is still awaited (a nack raises DeliveryError).
        # The concrete aiormq channel: its abstract base does not declare `wait`.
        channel = cast(aiormq.Channel, await self._publishing.get_underlay_channel())
        exchange = self._settings.topology.results_exchange
        # One deadline for the whole batch rather than one timer per publish.
        async with asyncio.timeout(self._settings.publish_timeout):
            await asyncio.gather(
                *(
                    channel.basic_publish(
                        o.body,
                        exchange=exchange,
                        routing_key=o.routing_key,
                        properties=spec.Basic.Properties(
                            message_id=o.id,
                            content_type="application/json",
                            delivery_mode=_PERSISTENT,
                            headers=carried.get(o.id),
                        ),
                        wait=False,
                    )
                    for o in outgoing
                )
            )

    async def _defer(self, item: Item, error: BaseException) -> str:
        """Moves a message to its next delay tier, or to the dead-letter queue after the last one."""
        message, properties = item.message, item.message.header.properties
        headers = failure_headers(properties.headers, reason=describe(error), routing_key=message.routing_key)
        attempts = headers[ATTEMPTS]
        delays = self._settings.retry_delays
        if attempts <= len(delays):
            target, outcome = self._settings.topology.raw.tier(delay_ms(delays[attempts - 1])), "deferred"
        else:
            target, outcome = self._settings.topology.dead_queue, "dead-lettered"
        await self._deferrals.publish(
            republished(message.body, properties, headers),
            routing_key=target,
            timeout=self._settings.publish_timeout,
        )
        return outcome


def _spans(items: list[Item]) -> list[tracing.Span]:
    """A `route` span per webhook, continuing the trace its envelope carries from the ingress."""
    return [
        tracing.start(
            "route",
            tracing.CONSUMER,
            parent=tracing.parent_of(item.message.header.properties.headers),
            attributes={"resultbus.webhook_id": item.raw.id, "resultbus.vendor": item.raw.vendor},
        )
        for item in items
    ]


def _carried(stored: Stored) -> dict[str, dict[str, Any]]:
    """Each event's headers: the context of the webhook's span it came from."""
    if not stored.spans:
        return {}
    carried: dict[str, dict[str, Any]] = {}
    for item, span in zip(stored.items, stored.spans, strict=True):
        if item.events and (headers := tracing.headers(span)):
            carried.update((n.event.id, headers) for n in item.events)
    return carried


# Headers a message has only if it went round before (a delay tier, the dead letters).
_FIRST_TIME = frozenset({ROUTING_KEY, REPLAYED})


def _seen_before(items: list[Item]) -> set[str]:
    """Events of messages that were delivered before (redelivered after a crash, back from a delay
    tier, replayed from the dead letters): whatever was stored then may not have been published, so
    they are published again. A first delivery publishes only what it stores anew: a duplicate of an
    event that its first copy is publishing right now is not sent twice."""
    return {
        n.event.id
        for item in items
        if item.message.redelivered
        or not _FIRST_TIME.isdisjoint(item.message.header.properties.headers or {})
        for n in item.events
    }


# The router settles on the AMQP channel itself (see `_consume`), through the consumer's `settled`.
async def _acked_up_to(message: DeliveredMessage) -> None:
    """Acks the message with every earlier one of its channel."""
    assert message.delivery_tag is not None
    await message.channel.basic_ack(message.delivery_tag, multiple=True)


async def _returned(message: DeliveredMessage) -> None:
    assert message.delivery_tag is not None
    await message.channel.basic_nack(message.delivery_tag, requeue=True)


def _decode(message: DeliveredMessage) -> Item:
    """The boundary of one message's content: whatever decoding or normalizing it raises, the
    message becomes a stored rejection with the reason, never an exception that leaves here."""
    try:
        envelope = decode_envelope(message.body)
    except Exception as error:
        REJECTIONS.labels("unknown", "expected").inc()
        return Item(message, _unreadable(message, f"envelope: {describe(error)}"), [])
    try:
        return Item(message, RawRow.of(envelope), normalize(envelope))
    except RejectedWebhook as rejection:
        REJECTIONS.labels(envelope.vendor.value, "expected").inc()
        return Item(message, RawRow.of(envelope, rejection.reason), [])
    except Exception as error:
        # Not a rule of ours: a bug, or an input no rule foresaw. Kept, replayable after a fix.
        reason = f"{envelope.vendor.value}: internal error: {describe(error)}"
        REJECTIONS.labels(envelope.vendor.value, "unexpected").inc()
        UNEXPECTED_ERRORS.labels("router").inc()
        log.error(
            "webhook rejected by an unexpected error", webhook_id=envelope.id, reason=reason, exc_info=error
        )
        return Item(message, RawRow.of(envelope, reason), [])


_LEVELS = {"rejected": 40, "deferred": 30, "dead-lettered": 40}

# A redelivered message that was being processed this often when a router died is not processed again.
_POISON_LIMIT = 3


def _poison(message: DeliveredMessage, times: int) -> Item:
    """A message that ended the router `times` times while it was being processed: stored as
    rejected unprocessed (replayable once the cause is fixed), so it stops taking routers down."""
    reason = f"the router stopped {times} times while processing this webhook; set aside unprocessed"
    try:
        envelope = decode_envelope(message.body)
        raw = RawRow.of(envelope, reason)
    except Exception:
        raw = _unreadable(message, reason)
    REJECTIONS.labels(raw.vendor, "poison").inc()
    log.error("poison webhook set aside", webhook_id=raw.id, reason=reason)
    return Item(message, raw, [])


def _suspect_key(message: DeliveredMessage) -> str:
    properties = message.header.properties
    return properties.message_id or hashlib.sha256(message.body).hexdigest()


def _unreadable(message: DeliveredMessage, reason: str) -> RawRow:
    """A message that is not a raw envelope at all is still kept, with what the broker knows of it."""
    properties = message.header.properties
    return RawRow(
        id=_uuid_or_new(properties.message_id),
        source=message.routing_key or "unknown",
        vendor="unknown",
        received_at=properties.timestamp or datetime.now(UTC),
        content_type=properties.content_type or "application/octet-stream",
        body=message.body,
        reason=reason,
    )


def _uuid_or_new(value: str | None) -> str:
    """The message's own id when it has one (so a replay of it is recognised), else a new one."""
    try:
        return str(uuid.UUID(value)) if value else str(uuid.uuid4())
    except ValueError:
        return str(uuid.uuid4())
