"""One unit of work per message, and the one place that decides what becomes of a message.

A handler returns (done) or raises. `decide` turns whatever it raised into a verdict:

    returned                        -> ack
    Retry, or a TRANSIENT failure   -> back to the queue after a pause that doubles per redelivery
                                       (the queue's delivery limit dead-letters it in the end)
    Reject                          -> the dead-letter queue with the reason, then ack
    anything else (a bug)           -> the dead-letter queue with the exception named, then ack;
                                       counted as unexpected, so that an operator can alert on it

The order inside a handler is always store -> publish -> return: a publish that fails after a commit
raises, the message comes back, and the handler, finding its work stored, publishes it again. Nothing
a handler raises crosses `Consumer`: it neither ends the consumer nor touches other messages.

The router's batches take their own, channel-level path for speed, but through `decide` and
`failure_headers` too: there is one policy, not a copy per consumer.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec
import prometheus_client
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from common import logs, tracing
from common.broker import BROKER_ERRORS, republished
from common.errors import TRANSIENT, Reject, Retry

log = structlog.get_logger("consumer")

# Headers of a deferred or dead-lettered message: why, how often, since when, from where.
ATTEMPTS = "x-resultbus-attempts"
FIRST_FAILED_AT = "x-resultbus-first-failed-at"
LAST_FAILED_AT = "x-resultbus-last-failed-at"
REASON = "x-resultbus-reason"
ROUTING_KEY = "x-resultbus-routing-key"
QUEUE = "x-resultbus-queue"  # the queue a message was dead-lettered from (by us, not by the broker)
REPLAYED = "x-resultbus-replayed"  # set by a replay of the dead letters: publish again what was stored
UNEXPECTED = "x-resultbus-unexpected"  # set when the reason is an exception of no expected type

MESSAGES = prometheus_client.Counter(
    "resultbus_messages", "Messages handled by a consumer, by outcome.", ["consumer", "outcome"]
)
UNEXPECTED_ERRORS = prometheus_client.Counter(
    "resultbus_unexpected_errors",
    "Messages whose handling raised an exception of no expected type: a bug to look at.",
    ["consumer"],
)

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class Verdict(StrEnum):
    ACK = "acked"
    RETRY = "retried"
    DEAD = "dead-lettered"


class Decision(msgspec.Struct, frozen=True):
    verdict: Verdict
    reason: str | None = None
    unexpected: bool = False
    after: float | None = None  # for RETRY: the handler's own idea of when


ACK = Decision(Verdict.ACK)


def describe(error: BaseException) -> str:
    """`KeyError: 'id'`: the exception's type and message, bounded, for a stored reason or a header."""
    text = str(error)
    return (f"{type(error).__name__}: {text}" if text else type(error).__name__)[:500]


def decide(error: BaseException | None) -> Decision:
    if error is None:
        return ACK
    if isinstance(error, Retry):
        return Decision(Verdict.RETRY, error.reason, after=error.after)
    if isinstance(error, TRANSIENT):
        return Decision(Verdict.RETRY, describe(error))
    if isinstance(error, Reject):
        return Decision(Verdict.DEAD, error.reason)
    return Decision(Verdict.DEAD, f"unexpected {describe(error)}", unexpected=True)


def failure_headers(
    headers: Mapping[str, Any] | None, *, reason: str, routing_key: str | None, unexpected: bool = False
) -> dict[str, Any]:
    """A message's headers after one more failure: the first failure's time and routing key kept."""
    out = dict(headers or {})
    previous = out.get(ATTEMPTS, 0)
    now = datetime.now(UTC).isoformat()
    out.setdefault(FIRST_FAILED_AT, now)
    out.setdefault(ROUTING_KEY, routing_key or "")
    out.update({ATTEMPTS: (previous if isinstance(previous, int) else 0) + 1, LAST_FAILED_AT: now})
    out[REASON] = reason[:500]
    if unexpected:
        out[UNEXPECTED] = True
    return out


def requeue_pause(message: AbstractIncomingMessage, base: float) -> float:
    """How long to hold a message before handing it back: doubling with each redelivery (the quorum
    queue counts them), so that an outage of minutes, not seconds, exhausts the delivery limit."""
    count = (message.headers or {}).get("x-delivery-count", 0)
    redeliveries = count if isinstance(count, int) else 0
    return float(min(30.0, base * 2.0 ** min(redeliveries, 5)))


class DeadLetters:
    """A dead-letter queue that messages are put into by us, with the reason (the broker's own
    dead-lettering, by delivery limit, says only that the limit was reached)."""

    def __init__(self, channel: AbstractChannel, queue: str, *, timeout: float = 5.0) -> None:
        """`channel` must have publisher confirms: a message is acked only once its copy is safe."""
        self._exchange = channel.default_exchange
        self.queue = queue
        self._timeout = timeout

    async def put(self, message: AbstractIncomingMessage, decision: Decision, from_queue: str) -> None:
        headers = failure_headers(
            message.headers,
            reason=decision.reason or "rejected",
            routing_key=message.routing_key,
            unexpected=decision.unexpected,
        )
        headers[QUEUE] = from_queue
        await self._exchange.publish(
            republished(message.body, message, headers), routing_key=self.queue, timeout=self._timeout
        )


class Consumer:
    """Consumes a queue with one task per message, so that a slow message never holds up the next;
    the channel's prefetch bounds the messages in hand."""

    def __init__(
        self,
        name: str,
        queue: AbstractQueue,
        handler: Handler,
        dead_letters: DeadLetters,
        *,
        pause: float = 1.0,
    ) -> None:
        self.name = name
        self._queue = queue
        self._handler = handler
        self._dead = dead_letters
        self._pause = pause
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Consumes until `stopping`, then waits for the messages in hand (the service cancels them
        past its deadline; the broker returns whatever was not settled)."""
        tag = await self._queue.consume(self._receive)
        try:
            await stopping.wait()
            await self._queue.cancel(tag)
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self.handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """One message, start to settle. Public for tests that hand a message in directly."""
        # Each message starts from a clean logging context (tasks copy the consumer's context).
        logs.clear()
        logs.bind(consumer=self.name, message_id=message.message_id)
        started = time.perf_counter()
        if tracing.ENABLED:
            with tracing.span(
                self.name,
                tracing.CONSUMER,
                parent=tracing.parent_of(message.headers),
                attributes={"messaging.destination.name": self._queue.name},
            ) as span:
                error = await self._outcome(message)
                decision = decide(error)
                _mark(span, decision)
        else:
            error = await self._outcome(message)
            decision = decide(error)
        await self._settle_message(message, decision)
        MESSAGES.labels(self.name, decision.verdict.value).inc()
        fields: dict[str, Any] = {
            "outcome": decision.verdict.value,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if decision.reason is not None:
            fields["reason"] = decision.reason
        if decision.unexpected:
            UNEXPECTED_ERRORS.labels(self.name).inc()
            log.error("message handled", exc_info=error, **fields)
        elif decision.verdict is Verdict.ACK:
            log.debug("message handled", **fields)
        else:
            log.warning("message handled", **fields)

    async def _outcome(self, message: AbstractIncomingMessage) -> Exception | None:
        try:
            await self._handler(message)
        except Exception as raised:  # the boundary: whatever it is, it is this message's outcome
            return raised
        return None

    async def _settle_message(self, message: AbstractIncomingMessage, decision: Decision) -> None:
        if decision.verdict is Verdict.DEAD:
            try:
                await self._dead.put(message, decision, self._queue.name)
            except BROKER_ERRORS as error:
                log.warning("could not dead-letter, returning the message", error=repr(error))
                decision = Decision(Verdict.RETRY, decision.reason)
        if decision.verdict is Verdict.RETRY:
            await asyncio.sleep(
                decision.after if decision.after is not None else requeue_pause(message, self._pause)
            )
            await settled(message.nack(requeue=True))
        else:
            await settled(message.ack())


async def settled(settling: Awaitable[object]) -> None:
    """Awaits an ack or a return (a nack that requeues). On a channel that went away meanwhile there
    is nothing to do: the broker has already put the message back."""
    try:
        await settling
    except BROKER_ERRORS as error:
        log.warning("message not settled: its channel is gone, the broker redelivers it", error=repr(error))


def _mark(span: tracing.Span | None, decision: Decision) -> None:
    if span is None:
        return
    span.set_attribute("resultbus.outcome", decision.verdict.value)
    if decision.verdict is not Verdict.ACK:
        span.set_status(tracing.Status(tracing.StatusCode.ERROR, decision.reason or decision.verdict))
