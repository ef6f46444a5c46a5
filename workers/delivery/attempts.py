"""Making attempts: one task from the attempts queue is one signed POST to one subscriber.

Isolation: every message runs in its own asyncio task (see consumer.py), so a slow endpoint holds
only its own tasks; at most `per_endpoint` of them run at once per worker. A task whose endpoint is
at that limit waits in memory for a slot, briefly and behind a few others, and is then parked in the
shortest delay tier (it frees its prefetch slot for other endpoints' work); one whose endpoint is
failing or hanging is not attempted but moved on along its retry schedule (health.py), so a dead
endpoint's backlog does not circle through the broker. The database reads and records of the
attempts running together are grouped into one statement each (batch.py).

A new delivery's first attempt is made by the fan-out itself (`first`), from the event it holds and
the target its match read: no task is published, consumed and acked for it, and no state is read.
The event message stands in for the task: it is acked only once those attempts are recorded and
followed up, and a fan-out that stops before that gets its event back (see create_deliveries). So
that a slow endpoint holds no event for long, an attempt still waiting for its endpoint at the
hand-off deadline goes to the attempts queue as an ordinary task, and one still posting is handed to
a guard task (DeliveryTask.guard) that comes back after the attempt's timeout: it publishes what
follows the attempt if that is recorded, and makes the attempt if not (its worker stopped).
"""

import asyncio
import collections
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from common import logs
from common.broker import persistent_message
from common.consumer import describe
from common.errors import Reject
from schemas.delivery import (
    DELIVERY_FAILED_KEY,
    SUBSCRIPTION_DISABLED_KEY,
    DeliveryFailed,
    DeliveryTask,
    SubscriptionDisabled,
    decode_task,
    encode_operational,
)
from subscribers.poster import Outcome, Poster
from subscribers.queues import TaskPublisher
from subscribers.signing import InvalidSecret, secret_key, webhook_headers
from workers.delivery import metrics, rate_limit, store
from workers.delivery.batch import Batch
from workers.delivery.health import EndpointHealth, Verdict
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger("delivery")

_OPERATIONAL_IDS = uuid.UUID("3b8f0c52-7d4e-5a61-9c2b-8e1f4a6d0b37")

# A task whose endpoint is at its limit first waits in memory for a slot, briefly and behind at most
# this many others per slot; only then is it parked in the broker. Parking every such task at once
# made a burst circle through the 1 s park tier (474 deliveries/s to 9 fast subscribers); waiting
# here is bounded, so a slow endpoint holds at most per_endpoint * (1 + WAITERS_PER_SLOT) of the
# worker's prefetch, for at most _SLOT_WAIT each.
WAITERS_PER_SLOT = 4
_SLOT_WAIT = 0.5
# How long the fan-out's first attempt of a delivery may hold its event before it is handed over; an
# answer slower than this is rare for a healthy endpoint (a local one answers in milliseconds).
HANDOFF = 0.25

# An endpoint whose recent attempts took longer than this on average gets no first attempt from
# the fan-out: at 20 events in hand, it would cap a worker at 20 / this events per second.
_QUICK_ANSWER = HANDOFF / 10


def guard_wait(timeout: float) -> float:
    """How long after the hand-off a guard comes back: past the attempt's timeout by a margin, so
    that its attempt is recorded by then unless the worker making it stopped."""
    return timeout + max(1.0, timeout / 3)


class Handoff:
    """A first attempt made for the fan-out: whether its POST is running, and whether a guard task
    has taken over what follows it (the attempt then publishes nothing)."""

    __slots__ = ("deadline", "hand_off", "handed_off", "posting")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.posting = False
        self.handed_off = False
        self.hand_off: Callable[[], None] = lambda: None  # what the deadline does while posting

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def may_post(self) -> bool:
        """Past the deadline, the POST is left to an ordinary task: the fan-out no longer waits."""
        if self.expired:
            return False
        self.posting = True
        return True

    def must_post(self) -> None:
        """The POST goes ahead whatever the time (a rate-limit slot was taken for it); past the
        deadline it is handed to a guard at once."""
        self.posting = True
        if self.expired:
            self.hand_off()


class Attempts:
    def __init__(
        self,
        settings: DeliverySettings,
        pool: asyncpg.Pool,
        poster: Poster,
        tasks: TaskPublisher,
        results: AbstractExchange,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._schedule = settings.schedule
        self._pool = pool
        self._poster = poster
        self._tasks = tasks
        self._results = results
        self._rng = rng or random.Random()
        # How each endpoint is doing, in this worker; and which endpoint a subscription posts to.
        self._endpoints: dict[str, EndpointHealth] = {}
        self._endpoint_of: dict[str, str] = {}
        # Tasks waiting in memory for a slot of their endpoint, oldest first.
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}
        # First attempts made for the fan-out, by delivery id, until done or handed to the queue.
        self._first: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        # Reads before and records after the POST, of the attempts running together, one round trip
        # (and one commit) per group rather than per attempt.
        self._reads: Batch[str, tuple[store.Target | None, store.DeliveryState | None]] = Batch(
            self._read_group
        )
        self._records: Batch[tuple[str, store.Attempt], int] = Batch(
            self._record_group, key=lambda item: item[0]
        )

    async def _read_group(
        self, delivery_ids: Sequence[str]
    ) -> list[tuple[store.Target | None, store.DeliveryState | None]]:
        async with self._pool.acquire() as conn:
            return await store.targets_and_states(conn, delivery_ids)

    async def _record_group(self, attempts: Sequence[tuple[str, store.Attempt]]) -> list[int]:
        async with self._pool.acquire() as conn:
            return await store.record_attempts(conn, attempts)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            task = decode_task(message.body)
        except (msgspec.MsgspecError, ValueError) as error:
            raise Reject(f"unreadable delivery task: {describe(error)}") from error
        try:  # checked here, not by the database: a bad id must not fail the statement of a group
            uuid.UUID(task.delivery_id)
        except ValueError as error:
            raise Reject(f"unreadable delivery task: delivery_id {task.delivery_id!r}") from error
        logs.bind(delivery_id=task.delivery_id, subscription_id=task.subscription_id, event_id=task.event_id)
        redelivered = bool(message.redelivered or (message.headers or {}).get("x-delivery-count"))
        await self._handle(task, redelivered=redelivered)

    async def _handle(self, task: DeliveryTask, *, redelivered: bool) -> None:
        wait = task.not_before - time.time()
        if wait > 0.05:
            await self._tasks.later(task, self._schedule.tier_for(wait))
            return
        # A busy endpoint's tasks are parked before any database work: they may come round often. So
        # is the task of a delivery whose first attempt this worker is still making for the fan-out.
        known = self._endpoint_of.get(task.subscription_id)
        if task.delivery_id in self._first:
            # Its first attempt is still being made here and may be handed off, publishing nothing
            # after it: as a guard, this task follows that attempt up if it finds it recorded.
            guard = msgspec.structs.replace(task, guard=True)
            await self._tasks.later(guard, self._schedule.tier_for(self._schedule.park))
            metrics.PARKED.inc()
            return
        if known is not None and not await self._turn(known, time.monotonic() + _SLOT_WAIT):
            await self._park(task, known)
            return
        target, state = await self._reads.submit(task.delivery_id)
        if state is None:
            return  # deleted meanwhile
        if task.made >= 0 and state.attempts > task.made:
            # This task's attempt is made. If the task came back, or it guards an attempt made for
            # the fan-out, what had to follow the attempt (the next task, the failed or disabled
            # event) may not have been published: publish it now.
            if (redelivered or task.guard) and target is not None:
                await self._follow_up(task, target, state)
            return
        if state.status != "pending":
            return  # finished meanwhile (a duplicate task)
        if target is None or target.status != "active":
            async with self._pool.acquire() as conn:
                await store.cancel(conn, task.delivery_id)
            log.info("delivery cancelled", reason="subscription not active")
            return
        await self._attempt(task, target, state.attempts, None)

    def first(self, task: DeliveryTask, target: store.Target) -> "asyncio.Future[None]":
        """Starts the first attempt of a delivery just stored, made for the fan-out. The future is
        done once the attempt and what follows it are recorded and published, or once it is handed
        over: to the attempts queue (still waiting for its endpoint at the deadline) or to a guard
        task (still posting). It fails only when a failed attempt could not be handed to a guard
        either. Cancelling it cancels the attempt: the event comes back and is handed out as tasks."""
        loop = asyncio.get_running_loop()
        handoff = Handoff(time.monotonic() + HANDOFF)
        attempt = loop.create_task(self._attempt(task, target, 0, handoff))
        released: asyncio.Future[None] = loop.create_future()
        self._first[task.delivery_id] = attempt
        self._keep(attempt)

        def at_deadline() -> None:
            if not attempt.done() and handoff.posting and not handoff.handed_off:
                handoff.handed_off = True  # from now on the attempt publishes nothing
                metrics.HANDED_OFF.inc()
                wait = guard_wait(self._settings.timeout)
                guard = msgspec.structs.replace(task, guard=True, not_before=time.time() + wait)
                self._release(released, self._tasks.later(guard, self._schedule.tier_for(wait)))

        def finished(_: "asyncio.Task[None]") -> None:
            timer.cancel()
            if self._first.get(task.delivery_id) is attempt:
                del self._first[task.delivery_id]
            error = None if attempt.cancelled() else attempt.exception()
            if handoff.handed_off or released.done():
                if error is not None:  # its guard takes over: only worth a line
                    log.warning(
                        "handed-off attempt failed", error=describe(error), delivery_id=task.delivery_id
                    )
            elif attempt.cancelled():
                released.cancel()
            elif error is None:
                released.set_result(None)
            else:  # recorded or not, a guard finds out which, and attempts or follows up
                log.warning(
                    "first attempt failed, handed to a guard",
                    error=describe(error),
                    delivery_id=task.delivery_id,
                )
                self._release(released, self._hand_to_queue(msgspec.structs.replace(task, guard=True)))

        handoff.hand_off = at_deadline
        timer = loop.call_later(HANDOFF, at_deadline)
        attempt.add_done_callback(finished)
        released.add_done_callback(lambda f: attempt.cancel() if f.cancelled() else None)
        return released

    def _release(self, released: "asyncio.Future[None]", publish: Coroutine[Any, Any, None]) -> None:
        """Completes `released` when `publish` has."""

        async def run() -> None:
            try:
                await publish
            except Exception as error:
                if not released.done():
                    released.set_exception(error)
                return
            if not released.done():
                released.set_result(None)

        self._keep(asyncio.get_running_loop().create_task(run()))

    async def run(self, stopping: asyncio.Event) -> None:
        """A work task of the service: at shutdown, after the fan-out has stopped, waits for the first
        attempts still running (handed off, their events acked) within the shutdown deadline, so that
        a deploy does not cut their POSTs and leave them to their guards to be sent twice."""
        await stopping.wait()
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _keep(self, task: "asyncio.Task[None]") -> None:
        # The loop holds only weak references to tasks.
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _park(self, task: DeliveryTask, endpoint: str) -> None:
        """Back to the broker while the endpoint is at its limit: for the shortest park; or, when
        even its youngest attempt has run longer than that (it is slow, or hanging), until it can be
        judged hanging, in one trip rather than one per park (a hanging endpoint's backlog would
        otherwise circle through the park tier every second until then)."""
        self._first.pop(task.delivery_id, None)
        health = self._health(endpoint)
        now = time.monotonic()
        if health.stuck_for(now) > self._schedule.park:
            wait = health.hanging_in(now)
            tier = self._schedule.tier_over(wait)
            if tier > 2000 * health.slow_after:  # a custom schedule with long tiers: a few trips instead
                tier = self._schedule.tier_for(wait)
        else:
            tier = self._schedule.tier_for(self._schedule.park)
        await self._tasks.later(task, tier)
        metrics.PARKED.inc()

    async def _hand_to_queue(self, task: DeliveryTask) -> None:
        """A first attempt the fan-out does not finish goes to the attempts queue, as a task that must
        not find it still running here."""
        self._first.pop(task.delivery_id, None)
        await self._tasks.now(task)

    async def _attempt(
        self, task: DeliveryTask, target: store.Target, attempts: int, handoff: Handoff | None
    ) -> None:
        """One attempt of a pending delivery to an active target, `attempts` made before it."""
        self._endpoint_of[task.subscription_id] = target.endpoint
        if handoff is None:
            await self._turn(target.endpoint, time.monotonic() + _SLOT_WAIT)
        elif self._health(target.endpoint).answer_time > _QUICK_ANSWER:
            # The fan-out holds its event while a first attempt runs: an endpoint known to answer
            # slowly would hold it for long (and cap how many events a worker takes in), so its
            # deliveries take the attempts queue, as every delivery did before.
            await self._hand_to_queue(task)
            return
        else:  # a short wait, and none for an endpoint whose slots are all held by slow attempts
            await self._turn(target.endpoint, handoff.deadline, patience=HANDOFF)
        health = self._health(target.endpoint)
        now = time.monotonic()
        verdict = health.verdict(now)
        if verdict is Verdict.PARK:
            if handoff is not None and health.stuck_for(now) <= self._schedule.park:
                await self._hand_to_queue(task)  # the fan-out does not wait; a task may, briefly
            else:
                await self._park(task, target.endpoint)
            return
        if verdict is Verdict.SKIP:
            await self._settle(
                task, target, Outcome(status=None, latency_ms=0.0, error=health.reason(now)), skipped=True
            )
            return
        if target.rate_limit is not None and target.rate_period is not None:
            if handoff is not None and handoff.expired:  # before a slot of the window is taken
                await self._hand_to_queue(task)
                return
            held_for = await rate_limit.hold(
                self._pool,
                endpoint_id=target.endpoint_id,
                limit=target.rate_limit,
                period=target.rate_period,
                delivery_id=task.delivery_id,
                attempt=attempts + 1,
                rng=self._rng,
            )
            if held_for is not None:  # over the limit: back to the broker until the window has room
                held = msgspec.structs.replace(task, not_before=time.time() + held_for)
                await self._tasks.later(held, self._schedule.tier_for(held_for))
                return
        if handoff is not None:
            if target.rate_limit is not None:
                handoff.must_post()  # its slot of the window is taken: never a send without a POST
            elif not handoff.may_post():
                await self._hand_to_queue(task)
                return
        started = health.started(time.monotonic())
        outcome: Outcome | None = None
        try:
            outcome = await self._post(task, target)
        finally:
            if handoff is not None:
                handoff.posting = False
            answered = outcome is not None and outcome.status is not None and outcome.status < 500
            finished = time.monotonic()
            health.finished(started, finished, answered_below_500=answered)
            metrics.ATTEMPT_SECONDS.observe(finished - started)
            self._wake(target.endpoint)
            if health.idle and not self._waiting.get(target.endpoint):
                self._endpoints.pop(target.endpoint, None)
        await self._settle(task, target, outcome, handed_off=handoff is not None and handoff.handed_off)

    async def _follow_up(self, task: DeliveryTask, target: store.Target, state: store.DeliveryState) -> None:
        if state.status == "pending" and state.next_attempt_at is not None:
            not_before = state.next_attempt_at.timestamp()
            retry = msgspec.structs.replace(
                # The step after the attempts made (a guard's own step is 0 whatever came since).
                task,
                step=max(task.step + 1, state.attempts),
                not_before=not_before,
                made=state.attempts,
                guard=False,
            )
            await self._tasks.later(retry, self._schedule.tier_for(max(0.0, not_before - time.time())))
            published = "retry"
        elif state.status == "failed" and state.last_outcome == "failed":
            outcome = Outcome(status=state.last_status, latency_ms=0.0, error=state.last_error)
            await self._publish_failed(task, target, outcome, state.attempts, state.updated_at)
            published = "delivery.failed"
        elif state.status == "failed" and state.last_outcome == "gone":
            await self._publish_disabled(task, target, state.updated_at)
            published = "subscription.disabled"
        else:  # succeeded or cancelled: nothing follows
            log.debug("earlier attempt needs no follow-up", status=state.status, attempts=state.attempts)
            return
        log.info(
            "follow-up of an earlier attempt published",
            published=published,
            status=state.status,
            attempts=state.attempts,
        )

    async def _turn(self, endpoint: str, deadline: float, patience: float = _SLOT_WAIT) -> bool:
        """False when the endpoint is still at its limit (PARK) by `deadline`, too many tasks are
        already waiting for it, or its attempts in flight have all run for longer than `patience`
        (slots that free that slowly are not worth waiting for); True when it is not at its limit
        (GO, or SKIP: that verdict is the caller's)."""
        waiting = self._waiting.setdefault(endpoint, collections.deque())
        health = self._health(endpoint)
        while health.verdict(now := time.monotonic()) is Verdict.PARK:
            full = len(waiting) >= self._settings.per_endpoint * WAITERS_PER_SLOT
            if full or health.stuck_for(now) > patience:
                return False
            woken = asyncio.get_running_loop().create_future()
            waiting.append(woken)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await woken
            except TimeoutError:
                return False
            finally:
                if not woken.done():
                    woken.cancel()
                    waiting.remove(woken)
        if not waiting:
            self._waiting.pop(endpoint, None)
        return True

    def _wake(self, endpoint: str) -> None:
        """A slot of the endpoint was freed: the oldest waiter takes its turn."""
        waiting = self._waiting.get(endpoint)
        while waiting:
            woken = waiting.popleft()
            if not woken.done():
                woken.set_result(None)
                return

    def _health(self, endpoint: str) -> EndpointHealth:
        health = self._endpoints.get(endpoint)
        if health is None:
            health = self._endpoints[endpoint] = EndpointHealth(limit=self._settings.per_endpoint)
        return health

    async def _post(self, task: DeliveryTask, target: store.Target) -> Outcome:
        try:
            keys = [secret_key(s) for s in target.secrets]
        except InvalidSecret as error:  # only a hand-edited database gets here
            return Outcome(status=None, latency_ms=0.0, error=f"bad secret: {error}")
        headers = webhook_headers(keys, task.event_id, int(time.time()), task.body)
        return await self._poster.post(target.url, task.body, headers)

    async def _settle(
        self,
        task: DeliveryTask,
        target: store.Target,
        outcome: Outcome,
        *,
        skipped: bool = False,
        handed_off: bool = False,
    ) -> None:
        """Records the attempt and publishes what follows it, unless a guard task took that over."""
        now = datetime.now(UTC)
        delay: float | None = None
        if outcome.ok:
            kind = "succeeded"
        elif outcome.gone:
            kind = "gone"
        else:
            delay = self._schedule.next_delay(task.step, outcome.retry_after, self._rng)
            kind = "failed" if delay is None else "retry"
        attempt = store.Attempt(
            attempted_at=now,
            status_code=outcome.status,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            outcome=kind,
            next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
        )
        disabled = False
        if kind != "gone":
            # One statement for the group (each delivery's update and its attempt row together) is
            # atomic by itself: no BEGIN/COMMIT round trips, one commit for the group.
            number = await self._records.submit((task.delivery_id, attempt))
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                number = await store.record_attempt(conn, task.delivery_id, attempt)
                disabled = await store.disable_subscription(
                    conn, task.subscription_id, f"endpoint answered 410 Gone at {now.isoformat()}"
                )
        if delay is not None and not handed_off:
            retry = msgspec.structs.replace(
                task, step=task.step + 1, not_before=time.time() + delay, made=number, guard=False
            )
            await self._tasks.later(retry, self._schedule.tier_for(delay))
        metrics.ATTEMPTS.labels("skipped" if skipped and kind == "retry" else kind).inc()
        if kind == "failed":
            metrics.FAILED.inc()
            if not handed_off:
                await self._publish_failed(task, target, outcome, number, now)
        if disabled:
            metrics.DISABLED.inc()
            if not handed_off:
                await self._publish_disabled(task, target, now)
        log.log(
            20 if outcome.ok else 30,
            "delivery attempt",
            outcome=kind,
            attempt=number,
            step=task.step,
            status=outcome.status,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            retry_in=None if delay is None else round(delay, 3),
            endpoint=target.endpoint,
            # Named here, not bound: a first attempt runs in the fan-out's context, not its own.
            delivery_id=task.delivery_id,
            subscription_id=task.subscription_id,
        )

    async def _publish_failed(
        self, task: DeliveryTask, target: store.Target, outcome: Outcome, attempts: int, now: datetime
    ) -> None:
        event = DeliveryFailed(
            # The same id however often it is published: consumers recognise a repeat.
            id=str(uuid.uuid5(_OPERATIONAL_IDS, f"delivery.failed:{task.delivery_id}")),
            delivery_id=task.delivery_id,
            subscription_id=task.subscription_id,
            event_id=task.event_id,
            endpoint=target.endpoint,
            attempts=attempts,
            last_status=outcome.status,
            last_error=outcome.error,
            failed_at=now,
        )
        await self._publish(event.id, encode_operational(event), DELIVERY_FAILED_KEY)

    async def _publish_disabled(self, task: DeliveryTask, target: store.Target, now: datetime) -> None:
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
