"""Making attempts: one task from the attempts queue is one attempt at one delivery, a signed webhook
POST or a gradebook write (destinations.py).

    task -> due? (else back to its delay tier) -> endpoint free? (else parked)
         -> claim (the delivery's state, target and stored body, in one batched statement)
         -> endpoint healthy? (else recorded as not attempted) -> rate limit? (else throttled)
         -> send -> settle (record; release the exam's next delivery) -> publish what follows -> ack

Every step that goes back to the broker before the send releases the claim first. What follows an
attempt (its retry, `delivery.failed`, `subscription.disabled`, the exam's next delivery) is
published before the task is acked; a task that comes back having made its attempt (its worker
stopped in between) publishes it again. Isolation: each task runs in its own asyncio task
(common/consumer.py), at most `per_endpoint` attempts per endpoint at once (endpoints.py); the claims
and settlements of the attempts running together share one statement each (batch.py).

Shutdown: no attempt starts once the worker is stopping (its task goes back, unclaimed); those
posting get what is left of the drain, and one still without an answer then is recorded as failed and
retried, so that every task in hand is settled before the process ends.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from common import logs, tracing
from common.batch import Batch
from common.broker import persistent_message
from common.consumer import ATTEMPTS, describe
from common.errors import Reject, Retry
from gradebook import crosswalk_db
from gradebook.delivering import Hold
from gradebook.plan import Skip
from schemas.delivery import (
    DELIVERY_FAILED_KEY,
    SUBSCRIPTION_DISABLED_KEY,
    Attempt,
    DeliveryFailed,
    OperationalEvent,
    SubscriptionDisabled,
    decode_task,
    encode_operational,
)
from subscribers.poster import Outcome
from subscribers.queues import TaskPublisher
from workers.delivery import metrics, rate_limit, store
from workers.delivery.destinations import Destinations, Work
from workers.delivery.endpoints import Endpoints
from workers.delivery.health import Admission
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger("delivery")

_OPERATIONAL_IDS = uuid.UUID("3b8f0c52-7d4e-5a61-9c2b-8e1f4a6d0b37")
_SLOT_WAIT = 0.5  # a busy endpoint where no attempt ended for this long: its waiting tasks are parked


class Settling(msgspec.Struct, frozen=True):
    delivery_id: str
    subscription_id: str
    exam: str | None
    settlement: store.Settlement
    disable: str | None = None  # the reason to disable the subscription with (a 410)


class Done(msgspec.Struct, frozen=True):
    """A settlement recorded: the delivery's attempts and status now, whether it disabled the
    subscription, and the deliveries of its exam it released."""

    attempts: int
    status: str
    disabled: bool
    released: list[store.Ready]


class Decision(msgspec.Struct, frozen=True):
    """How an attempt ends: its outcome in the log, the delivery's status after it, the wait before
    the next attempt (a retry), and what the attempts metric counts it as (its outcome, unless said)."""

    kind: str  # succeeded | retry | failed | gone | skipped
    status: str  # succeeded | pending | failed | cancelled
    delay: float | None = None
    counted_as: str = ""


def recovering(message: AbstractIncomingMessage) -> bool:
    """Whether the broker (or a replay of the dead letters) delivers this message again: whatever
    it asked for may have been done, or begun, by the worker that held it."""
    headers = message.headers or {}
    return bool(message.redelivered or headers.get("x-delivery-count") or ATTEMPTS in headers)


def next_task(ready: store.Ready | crosswalk_db.Resumable) -> Attempt:
    return Attempt(
        delivery_id=ready.delivery_id,
        subscription_id=ready.subscription_id,
        event_id=ready.event_id,
        attempt=ready.attempts + 1,
    )


class Attempts:
    def __init__(
        self,
        settings: DeliverySettings,
        pool: asyncpg.Pool,
        destinations: Destinations,
        tasks: TaskPublisher,
        results: AbstractExchange,
        *,
        drain: float,
        worker: int,
        rng: random.Random | None = None,
    ) -> None:
        """`worker`: the key of this worker's liveness lock (run.py), which its claims carry."""
        self._settings = settings
        self._schedule = settings.schedule
        self._pool = pool
        self._destinations = destinations
        self._tasks = tasks
        self._results = results
        self._drain = drain
        self._worker = worker
        self._rng = rng or random.Random()
        self._endpoints = Endpoints(settings.per_endpoint)
        self._endpoint_of: dict[str, str] = {}  # subscription id -> its endpoint, once seen
        self._stopping = False
        self._deadline: float | None = None  # once stopping: when the POSTs in flight are cut short
        self._posting: set[asyncio.Timeout] = set()
        # Two copies of one task never share a claim statement: only one of them may claim.
        self._claims: Batch[tuple[str, int, bool], store.Claim | None] = Batch(
            self._claim_group, key=lambda item: item[0]
        )
        # Two lanes of settlements, each exam always in the same one: a settlement takes its exams'
        # locks, and two groups running together that share an exam (the deliveries of one event
        # end together) would wait for each other's commit.
        self._settlements: tuple[Batch[Settling, Done], ...] = tuple(
            Batch(self._settle_group, key=lambda item: item.delivery_id, parallel=1) for _ in range(2)
        )

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            task, follow_up = decode_task(message.body)
            uuid.UUID(task.delivery_id)  # checked here: a bad id must not fail the statement of a group
        except (msgspec.MsgspecError, ValueError) as error:
            raise Reject(f"unreadable delivery task: {describe(error)}") from error
        logs.bind(delivery_id=task.delivery_id, subscription_id=task.subscription_id)
        if (wait := task.not_before - time.time()) > 0.05:
            await self._tasks.later(task, self._schedule.tier_to_wait(wait))
            return
        known = self._endpoint_of.get(task.subscription_id)
        if known is not None and await self._endpoints.turn(known, _SLOT_WAIT) is Admission.PARK:
            await self._park(task, known)  # a busy endpoint's tasks cost no database work
            return
        again = follow_up or recovering(message)
        claim = await self._claims.submit((task.delivery_id, task.attempt, again))
        if claim is None:
            return  # deleted meanwhile
        if not claim.claimed:
            state = claim.state
            if again and state.claimed_elsewhere and (task.attempt == 0 or state.attempts < task.attempt):
                # Its worker still runs (its broker connection went, say): the attempt may still be
                # recorded. Back later, to find it made, or the claim free to take over.
                raise Retry("its attempt is being made by a worker that still runs")
            if again and claim.target is not None:
                await self._follow_up(task, state, claim.target)
            return  # made, settled, waiting for its turn, or being made by another copy of the task
        try:
            await self._attempt(task, claim)
        except BaseException:
            # Whatever went wrong, the delivery is not left claimed by a task that is gone.
            try:
                await asyncio.shield(self._unclaim(task.delivery_id))
            except Exception as error:
                log.warning("claim not released", error=describe(error))
            raise

    async def stop(self, stopping: asyncio.Event) -> None:
        """A work task of the service: once stopping, no attempt starts, and the POSTs in flight get
        what is left of the drain (with time to settle after)."""
        await stopping.wait()
        self._stopping = True
        self._deadline = asyncio.get_running_loop().time() + max(0.1, self._drain - min(1.0, self._drain / 4))
        for timeout in self._posting:
            timeout.reschedule(self._deadline)

    async def resume(self, held: Sequence[crosswalk_db.Resumable]) -> None:
        """The tasks of held deliveries whose candidate a mapping released (gradebook/delivering.py)."""
        await self._tasks.now_all([next_task(h) for h in held])

    async def _attempt(self, task: Attempt, claim: store.Claim) -> None:
        target, state = claim.target, claim.state
        if target is None or target.status != "active" or claim.payload is None:
            reason = "subscription not active" if claim.payload is not None else "the event is not stored"
            cancel = store.Settlement(status="cancelled", made=False, attempted_at=datetime.now(UTC))
            await self._settle_delivery(task, state.exam, cancel)
            log.info("delivery cancelled", reason=reason)
            return
        work = await self._destinations.prepare(target, state, claim.payload)
        if isinstance(work, Skip):  # nothing for this destination in this event
            skipped = Outcome(status=None, latency_ms=0.0, error=f"not sent: {work.reason}")
            await self._record(task, state, target, skipped, Decision("skipped", "cancelled"))
            return
        if isinstance(work, Hold):
            await self._hold(task, state, work)
            return
        self._endpoint_of[task.subscription_id] = endpoint = target.endpoint
        admission = await self._endpoints.turn(endpoint, _SLOT_WAIT)
        if admission is Admission.PARK:
            await self._unclaim(task.delivery_id)
            await self._park(task, endpoint)
            return
        if admission is Admission.SKIP:
            reason = self._endpoints.health(endpoint).reason(time.monotonic())
            skipped = Outcome(status=None, latency_ms=0.0, error=reason)
            decision = self._decide(task, target, skipped)
            if decision.kind == "retry":  # a retry the endpoint's state decided, not its answer
                decision = msgspec.structs.replace(decision, counted_as="skipped")
            await self._record(task, state, target, skipped, decision)
            return
        if self._stopping:
            raise Retry("the worker is stopping", after=0.0)  # its claim released, unattempted
        wait = await rate_limit.throttle(self._pool, target, task.delivery_id, state.attempts + 1, self._rng)
        if wait is not None:  # over the limit: back to the broker until the window has room
            await self._unclaim(task.delivery_id)
            throttled = msgspec.structs.replace(task, not_before=time.time() + wait)
            await self._tasks.later(throttled, self._schedule.tier_to_wait(wait))
            return
        outcome = await self._send(target, work, endpoint)
        await self._record(task, state, target, outcome, self._decide(task, target, outcome))

    async def _send(self, target: store.Target, work: Work, endpoint: str) -> Outcome:
        started = self._endpoints.started(endpoint)
        outcome: Outcome | None = None
        timeout = asyncio.timeout(self._deadline)
        try:
            async with timeout:
                self._posting.add(timeout)
                outcome = await self._destinations.send(target, work)
        except TimeoutError:  # cut short by the shutdown (see stop)
            outcome = Outcome(
                status=None,
                latency_ms=(time.monotonic() - started) * 1000,
                error="timeout: the worker stopped",
            )
        finally:
            self._posting.discard(timeout)
            answered = outcome is not None and outcome.status is not None and outcome.status < 500
            self._endpoints.finished(endpoint, started, answered_below_500=answered)
        return outcome

    def _decide(self, task: Attempt, target: store.Target, outcome: Outcome) -> Decision:
        if outcome.ok:
            return Decision("succeeded", "succeeded")
        if outcome.gone and target.kind == "webhook":
            return Decision("gone", "failed")
        delay = None
        if not self._destinations.final(target, outcome):
            delay = self._schedule.next_delay(task.step, outcome.retry_after, self._rng)
        return Decision("failed", "failed") if delay is None else Decision("retry", "pending", delay)

    async def _record(
        self, task: Attempt, state: store.State, target: store.Target, outcome: Outcome, decision: Decision
    ) -> None:
        """Records the attempt as `decision` says, then publishes what follows it."""
        now = datetime.now(UTC)
        kind, delay = decision.kind, decision.delay
        settlement = store.Settlement(
            status=decision.status,
            made=True,
            attempted_at=now,
            status_code=outcome.status,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            outcome=kind,
            next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
        )
        gone = f"endpoint answered 410 Gone at {now.isoformat()}" if kind == "gone" else None
        settled = await self._settle_delivery(task, state.exam, settlement, disable=gone)
        metrics.ATTEMPTS.labels(decision.counted_as or kind).inc()
        retry_in = delay if settled.status == "pending" else None
        if retry_in is not None:
            await self._retry(task, settled.attempts, retry_in)
        if kind == "failed":
            metrics.FAILED.inc()
            await self._publish_failed(task, target, settled.attempts, outcome.status, outcome.error, now)
        if settled.disabled:
            metrics.DISABLED.inc()
            await self._publish_disabled(task, target, now)
        log.log(
            20 if outcome.ok else 30,
            "delivery attempt",
            outcome=kind if settled.status != "superseded" else "superseded",
            attempt=settled.attempts,
            step=task.step,
            status=outcome.status,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            retry_in=None if retry_in is None else round(retry_in, 3),
            endpoint=target.endpoint,
        )

    async def _settle_delivery(
        self, task: Attempt, exam: str | None, settlement: store.Settlement, *, disable: str | None = None
    ) -> Done:
        """Records how the delivery ends its turn and publishes the tasks of what that released."""
        lane = self._settlements[hash(exam) % len(self._settlements)]
        settled = await lane.submit(
            Settling(task.delivery_id, task.subscription_id, exam, settlement, disable)
        )
        if settled.status == "superseded":
            metrics.SUPERSEDED.inc()
        with tracing.detached():  # each released delivery belongs to its own event's trace
            await self._tasks.now_all([next_task(r) for r in settled.released])
        return settled

    async def _hold(self, task: Attempt, state: store.State, hold: Hold) -> None:
        """Held until the crosswalk maps its candidate (gradebook_holds says why): the hold and the
        delivery's status in one transaction, so that a mapping arriving meanwhile is not missed."""
        held = store.Settlement(
            status="held",
            made=True,
            attempted_at=datetime.now(UTC),
            error=f"held: {hold.reason}",
            outcome="held",
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await crosswalk_db.hold(
                conn,
                subscription_id=task.subscription_id,
                event=hold.event,
                reason=hold.reason,
                delivery_id=task.delivery_id,
                seen=hold.seen,
            )
            await store.settle(conn, [(task.delivery_id, held)], [state.exam] if state.exam else [])
        metrics.ATTEMPTS.labels("held").inc()
        log.warning("delivery held", reason=hold.reason)

    async def _follow_up(self, task: Attempt, state: store.State, target: store.Target) -> None:
        """This task came back (its worker stopped before acking it) and finds its delivery past it:
        what followed may not be published. The retry or the operational event, when its own attempt
        is the last recorded; the tasks of what a settlement released, whatever settled it."""
        published = []
        if state.attempts == task.attempt:
            if state.status == "pending" and state.next_attempt_at is not None:
                retry_in = max(0.0, state.next_attempt_at.timestamp() - time.time())
                await self._retry(task, state.attempts, retry_in)
                published.append("retry")
            elif state.status == "failed" and state.last_outcome == "failed":
                await self._publish_failed(
                    task, target, state.attempts, state.last_status, state.last_error, state.updated_at
                )
                published.append("delivery.failed")
            elif state.status == "failed" and state.last_outcome == "gone":
                await self._publish_disabled(task, target, state.updated_at)
                published.append("subscription.disabled")
        if state.status not in ("pending", "waiting", "held") and state.exam is not None:
            async with self._pool.acquire() as conn:
                released = await store.released_after(conn, task.delivery_id)
            with tracing.detached():
                await self._tasks.now_all([next_task(r) for r in released])
            if released:
                published.append(f"{len(released)} released")
        if published:
            log.info("follow-up of an earlier attempt published", published=published, status=state.status)

    async def _retry(self, task: Attempt, attempts: int, delay: float) -> None:
        """Publishes the next attempt after `attempts`, due in `delay` seconds."""
        retry = msgspec.structs.replace(
            task, attempt=attempts + 1, step=task.step + 1, not_before=time.time() + delay
        )
        await self._tasks.later(retry, self._schedule.tier_to_wait(delay))

    async def _publish_failed(
        self,
        task: Attempt,
        target: store.Target,
        attempts: int,
        status: int | None,
        error: str | None,
        at: datetime,
    ) -> None:
        failed = DeliveryFailed(
            id=_operational_id("delivery.failed", task),
            delivery_id=task.delivery_id,
            subscription_id=task.subscription_id,
            event_id=task.event_id,
            endpoint=target.endpoint,
            attempts=attempts,
            last_status=status,
            last_error=error,
            failed_at=at,
        )
        await self._publish(failed, DELIVERY_FAILED_KEY)

    async def _publish_disabled(self, task: Attempt, target: store.Target, at: datetime) -> None:
        disabled = SubscriptionDisabled(
            id=_operational_id("subscription.disabled", task),
            subscription_id=task.subscription_id,
            endpoint=target.endpoint,
            reason="endpoint answered 410 Gone",
            disabled_at=at,
        )
        await self._publish(disabled, SUBSCRIPTION_DISABLED_KEY)

    async def _publish(self, event: OperationalEvent, routing_key: str) -> None:
        body = encode_operational(event)
        message = persistent_message(body, message_id=event.id, content_type="application/json")
        await self._results.publish(message, routing_key=routing_key, timeout=5.0)

    async def _park(self, task: Attempt, endpoint: str) -> None:
        """Back to the broker while the endpoint is at its limit: for the shortest park; or, when
        even its youngest attempt has run longer than that (it is slow, or hanging), until it can be
        judged hanging, in one trip rather than one per park."""
        health = self._endpoints.health(endpoint)
        now = time.monotonic()
        tier = self._schedule.tier_for(self._schedule.park)
        if health.stuck_for(now) > self._schedule.park:
            wait = health.hanging_in(now)
            tier = self._schedule.tier_over(wait)
            if tier > 2000 * health.slow_after:  # a custom schedule with long tiers: a few trips instead
                tier = self._schedule.tier_for(wait)
        await self._tasks.later(task, tier)
        metrics.PARKED.inc()

    async def _unclaim(self, delivery_id: str) -> None:
        async with self._pool.acquire() as conn:
            await store.unclaim(conn, delivery_id)

    async def _claim_group(self, items: Sequence[tuple[str, int, bool]]) -> list[store.Claim | None]:
        async with self._pool.acquire() as conn:
            return await store.claim(conn, items, self._worker)

    async def _settle_group(self, items: Sequence[Settling]) -> list[Done]:
        exams = sorted({i.exam for i in items if i.exam is not None})
        disable = [(i.subscription_id, i.disable) for i in items if i.disable is not None]
        async with self._pool.acquire() as conn:
            done = await store.settle(conn, [(i.delivery_id, i.settlement) for i in items], exams, disable)
        # What a settlement released goes to the item of its subscription's exam (one per group).
        released: dict[tuple[str, str | None], list[store.Ready]] = {}
        for ready in done.released:
            released.setdefault((ready.subscription_id, ready.exam), []).append(ready)
        return [
            Done(
                s.attempts,
                s.status,
                i.subscription_id in done.disabled and i.disable is not None,
                released.pop((i.subscription_id, i.exam), []),
            )
            for i, s in zip(items, done.settled, strict=True)
        ]


def _operational_id(kind: str, task: Attempt) -> str:
    """The same id however often it is published: consumers recognise a repeat."""
    return str(uuid.uuid5(_OPERATIONAL_IDS, f"{kind}:{task.delivery_id}"))
