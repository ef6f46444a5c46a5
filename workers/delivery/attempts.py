"""Making attempts: one task from the attempts queue is one signed POST to one subscriber.

    task -> due? (else back to its delay tier) -> endpoint free? (else parked)
         -> claim (the delivery's state, target and stored body, in one batched statement)
         -> endpoint healthy? (else recorded as not attempted) -> rate limit? (else held)
         -> POST -> settle (record; release the exam's next delivery) -> publish what follows -> ack

Every step that goes back to the broker before the POST hands the claim back. What follows an
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
import contextlib
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
from common.broker import persistent_message
from common.consumer import ATTEMPTS, describe
from common.errors import Reject, Retry
from gradebook import crosswalk_db
from gradebook.plan import Skip
from schemas.delivery import (
    DELIVERY_FAILED_KEY,
    SUBSCRIPTION_DISABLED_KEY,
    Attempt,
    DeliveryFailed,
    SubscriptionDisabled,
    decode_task,
    encode_operational,
)
from subscribers.poster import Outcome
from subscribers.queues import TaskPublisher
from workers.delivery import metrics, rate_limit, store
from workers.delivery.batch import Batch
from workers.delivery.destinations import Destinations, Hold, Work
from workers.delivery.endpoints import Endpoints
from workers.delivery.health import Verdict
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger("delivery")

_OPERATIONAL_IDS = uuid.UUID("3b8f0c52-7d4e-5a61-9c2b-8e1f4a6d0b37")
_SLOT_WAIT = 0.5  # how long a task waits here for its endpoint before it is parked in the broker
_RESUME_EVERY = 2.0  # seconds between looks for held deliveries a mapping released


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
    the next attempt (a retry), and what the attempts metric counts it as."""

    kind: str  # succeeded | retry | failed | gone | skipped
    status: str  # succeeded | pending | failed | cancelled
    delay: float | None = None
    counted_as: str = ""


def recovering(message: AbstractIncomingMessage) -> bool:
    """Whether the broker (or a replay of the dead letters) hands this message out again: whatever
    it asked for may have been done, or begun, by the worker that held it."""
    headers = message.headers or {}
    return bool(message.redelivered or headers.get("x-delivery-count") or ATTEMPTS in headers)


def next_task(ready: store.Ready) -> Attempt:
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
        self._settlements: Batch[Settling, Done] = Batch(
            self._settle_group, key=lambda item: item.delivery_id
        )

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            task, follow_up = decode_task(message.body)
            uuid.UUID(task.delivery_id)  # checked here: a bad id must not fail the statement of a group
        except (msgspec.MsgspecError, ValueError) as error:
            raise Reject(f"unreadable delivery task: {describe(error)}") from error
        logs.bind(delivery_id=task.delivery_id, subscription_id=task.subscription_id)
        if (wait := task.not_before - time.time()) > 0.05:
            await self._tasks.later(task, self._schedule.tier_for(wait))
            return
        known = self._endpoint_of.get(task.subscription_id)
        if known is not None and not await self._endpoints.turn(known, _SLOT_WAIT):
            await self._park(task, known)  # a busy endpoint's tasks cost no database work
            return
        again = follow_up or recovering(message)
        claim = await self._claims.submit((task.delivery_id, task.attempt, again))
        if claim is None:
            return  # deleted meanwhile
        if not claim.claimed:
            state = claim.state
            if again and state.in_hand and (task.attempt == 0 or state.attempts < task.attempt):
                # Its worker still runs (its broker connection went, say): the attempt may still be
                # recorded. Back later, to find it made, or the claim free to take over.
                raise Retry("its attempt is in the hands of a worker that still runs")
            if again and claim.target is not None:
                await self._follow_up(task, state, claim.target)
            return  # made, settled, waiting for its turn, or in the hands of another copy of the task
        try:
            await self._attempt(task, claim)
        except BaseException:
            # Whatever went wrong, the delivery is not left claimed by a task that is gone.
            try:
                await asyncio.shield(self._hand_back(task.delivery_id))
            except Exception as error:
                log.warning("claim not handed back", error=describe(error))
            raise

    async def stop(self, stopping: asyncio.Event) -> None:
        """A work task of the service: once stopping, no attempt starts, and the POSTs in flight get
        what is left of the drain (with time to settle after)."""
        await stopping.wait()
        self._stopping = True
        self._deadline = asyncio.get_running_loop().time() + max(0.1, self._drain - min(1.0, self._drain / 4))
        for timeout in self._posting:
            timeout.reschedule(self._deadline)

    async def _attempt(self, task: Attempt, claim: store.Claim) -> None:
        target, state = claim.target, claim.state
        if target is None or target.status != "active" or claim.payload is None:
            reason = "subscription not active" if claim.payload is not None else "the event is not stored"
            cancel = store.Settlement(status="cancelled", made=False, attempted_at=datetime.now(UTC))
            await self._settle(task, state.exam, cancel)
            log.info("delivery cancelled", reason=reason)
            return
        work = await self._destinations.prepare(target, state, claim.payload)
        if isinstance(work, Skip):  # nothing for this destination in this event
            skipped = Outcome(status=None, latency_ms=0.0, error=f"not sent: {work.reason}")
            await self._record(
                task, state, target, skipped, Decision("skipped", "cancelled", counted_as="skipped")
            )
            return
        if isinstance(work, Hold):
            await self._hold(task, state, work)
            return
        self._endpoint_of[task.subscription_id] = endpoint = target.endpoint
        if not await self._endpoints.turn(endpoint, _SLOT_WAIT):
            await self._hand_back(task.delivery_id)
            await self._park(task, endpoint)
            return
        health = self._endpoints.health(endpoint)
        verdict = health.verdict(time.monotonic())
        if verdict is Verdict.PARK:  # another task took the slot meanwhile
            await self._hand_back(task.delivery_id)
            await self._park(task, endpoint)
            return
        if verdict is Verdict.SKIP:
            skipped = Outcome(status=None, latency_ms=0.0, error=health.reason(time.monotonic()))
            decision = self._decide(task, target, skipped)
            counted = "skipped" if decision.kind == "retry" else decision.kind
            await self._record(
                task, state, target, skipped, msgspec.structs.replace(decision, counted_as=counted)
            )
            return
        if self._stopping:
            raise Retry("the worker is stopping", after=0.0)  # handed back, unattempted
        if target.rate_limit is not None and target.rate_period is not None:
            held_for = await rate_limit.hold(
                self._pool,
                endpoint_id=target.endpoint_id,
                limit=target.rate_limit,
                period=target.rate_period,
                delivery_id=task.delivery_id,
                attempt=state.attempts + 1,
                rng=self._rng,
            )
            if held_for is not None:  # over the limit: back to the broker until the window has room
                await self._hand_back(task.delivery_id)
                held = msgspec.structs.replace(task, not_before=time.time() + held_for)
                await self._tasks.later(held, self._schedule.tier_for(held_for))
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
            return Decision("succeeded", "succeeded", counted_as="succeeded")
        if outcome.gone and target.kind == "webhook":
            return Decision("gone", "failed", counted_as="gone")
        if self._destinations.final(target, outcome):
            return Decision("failed", "failed", counted_as="failed")
        delay = self._schedule.next_delay(task.step, outcome.retry_after, self._rng)
        if delay is None:
            return Decision("failed", "failed", counted_as="failed")
        return Decision("retry", "pending", delay, counted_as="retry")

    async def _record(
        self, task: Attempt, state: store.State, target: store.Target, outcome: Outcome, decision: Decision
    ) -> None:
        """Records the attempt as `decision` says, then publishes what follows it."""
        now = datetime.now(UTC)
        kind, status, delay = decision.kind, decision.status, decision.delay
        settlement = store.Settlement(
            status=status,
            made=True,
            attempted_at=now,
            status_code=outcome.status,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            outcome=kind,
            next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
        )
        gone = f"endpoint answered 410 Gone at {now.isoformat()}" if kind == "gone" else None
        settled = await self._settle(task, state.exam, settlement, disable=gone)
        metrics.ATTEMPTS.labels(decision.counted_as or kind).inc()
        if delay is not None and settled.status == "pending":
            retry = msgspec.structs.replace(
                task, attempt=settled.attempts + 1, step=task.step + 1, not_before=time.time() + delay
            )
            await self._tasks.later(retry, self._schedule.tier_for(delay))
        if kind == "failed":
            metrics.FAILED.inc()
            await self._publish_failed(task, target, outcome.status, outcome.error, settled.attempts, now)
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
            retry_in=None if delay is None or settled.status != "pending" else round(delay, 3),
            endpoint=target.endpoint,
        )

    async def _settle(
        self, task: Attempt, exam: str | None, settlement: store.Settlement, *, disable: str | None = None
    ) -> Done:
        """Records the settlement and publishes the tasks of what it released."""
        settled = await self._settlements.submit(
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

    async def resume_held(self, stopping: asyncio.Event) -> None:
        """A work task of the service: every few seconds, the tasks of the held deliveries whose
        candidate a mapping released (gradebook/crosswalk_db.py), then marks them resumed."""
        while not stopping.is_set():
            try:
                async with self._pool.acquire() as conn:
                    ready = await crosswalk_db.resumable(conn)
                await self._tasks.now_all(
                    [
                        next_task(store.Ready(r.delivery_id, r.subscription_id, r.event_id, r.attempts))
                        for r in ready
                    ]
                )
                async with self._pool.acquire() as conn:
                    await crosswalk_db.mark_resumed(conn, [r.delivery_id for r in ready])
                if ready:
                    log.info("held deliveries resumed", deliveries=len(ready))
                    continue  # there may be more
            except Exception as error:  # a database or broker outage: the next look retries
                log.warning("could not resume held deliveries", error=describe(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_RESUME_EVERY):
                    await stopping.wait()

    async def _follow_up(self, task: Attempt, state: store.State, target: store.Target) -> None:
        """This task came back (its worker stopped before acking it) and finds its delivery past it:
        what followed may not be published. The retry or the operational event, when its own attempt
        is the last recorded; the tasks of what a settlement released, whatever settled it."""
        published = []
        if state.attempts == task.attempt:
            if state.status == "pending" and state.next_attempt_at is not None:
                not_before = state.next_attempt_at.timestamp()
                retry = msgspec.structs.replace(
                    task, attempt=state.attempts + 1, step=task.step + 1, not_before=not_before
                )
                await self._tasks.later(retry, self._schedule.tier_for(max(0.0, not_before - time.time())))
                published.append("retry")
            elif state.status == "failed" and state.last_outcome == "failed":
                await self._publish_failed(
                    task, target, state.last_status, state.last_error, state.attempts, state.updated_at
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

    async def _hand_back(self, delivery_id: str) -> None:
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

    async def _publish_failed(
        self,
        task: Attempt,
        target: store.Target,
        status: int | None,
        error: str | None,
        attempts: int,
        now: datetime,
    ) -> None:
        event = DeliveryFailed(
            # The same id however often it is published: consumers recognise a repeat.
            id=str(uuid.uuid5(_OPERATIONAL_IDS, f"delivery.failed:{task.delivery_id}")),
            delivery_id=task.delivery_id,
            subscription_id=task.subscription_id,
            event_id=task.event_id,
            endpoint=target.endpoint,
            attempts=attempts,
            last_status=status,
            last_error=error,
            failed_at=now,
        )
        await self._publish(event.id, encode_operational(event), DELIVERY_FAILED_KEY)

    async def _publish_disabled(self, task: Attempt, target: store.Target, now: datetime) -> None:
        event = SubscriptionDisabled(
            id=str(uuid.uuid5(_OPERATIONAL_IDS, f"subscription.disabled:{task.delivery_id}")),
            subscription_id=task.subscription_id,
            endpoint=target.endpoint,
            reason="endpoint answered 410 Gone",
            disabled_at=now,
        )
        await self._publish(event.id, encode_operational(event), SUBSCRIPTION_DISABLED_KEY)

    async def _publish(self, message_id: str, body: bytes, routing_key: str) -> None:
        await self._results.publish(
            persistent_message(body, message_id=message_id, content_type="application/json"),
            routing_key=routing_key,
            timeout=5.0,
        )
