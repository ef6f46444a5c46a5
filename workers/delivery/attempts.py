"""Making attempts: one task from the attempts queue is one signed POST to one subscriber.

Isolation: every message runs in its own asyncio task (see consumer.py), so a slow endpoint holds
only its own tasks; at most `per_endpoint` of them run at once per worker. A task whose endpoint is
at that limit waits in memory for a slot, briefly and behind a few others, and is then parked in the
shortest delay tier (it frees its prefetch slot for other endpoints' work); one whose endpoint is
failing or hanging is not attempted but moved on along its retry schedule (health.py), so a dead
endpoint's backlog does not circle through the broker. The database reads and records of the
attempts running together are grouped into one statement each (batch.py).
"""

import asyncio
import collections
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

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
# here is bounded, so a slow endpoint holds at most per_endpoint * (1 + _WAITERS_PER_SLOT) of the
# worker's prefetch, for at most _SLOT_WAIT each.
_WAITERS_PER_SLOT = 4
_SLOT_WAIT = 0.5


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
        structlog.contextvars.bind_contextvars(
            delivery_id=task.delivery_id, subscription_id=task.subscription_id, event_id=task.event_id
        )
        redelivered = bool(message.redelivered or (message.headers or {}).get("x-delivery-count"))
        await self._handle(task, redelivered=redelivered)

    async def _handle(self, task: DeliveryTask, *, redelivered: bool) -> None:
        wait = task.not_before - time.time()
        if wait > 0.05:
            await self._tasks.later(task, self._schedule.tier_for(wait))
            return
        # A busy endpoint's tasks are parked before any database work: they may come round often.
        known = self._endpoint_of.get(task.subscription_id)
        if known is not None and not await self._turn(known, time.monotonic() + _SLOT_WAIT):
            await self._tasks.later(task, self._schedule.tier_for(self._schedule.park))
            metrics.PARKED.inc()
            return
        target, state = await self._reads.submit(task.delivery_id)
        if state is None:
            return  # deleted meanwhile
        if task.made >= 0 and state.attempts > task.made:
            # This task's attempt is made. If the task came back, what had to follow the attempt (the
            # next task, the failed or disabled event) may not have been published: publish it now.
            if redelivered and target is not None:
                await self._follow_up(task, target, state)
            return
        if state.status != "pending":
            return  # finished meanwhile (a duplicate task)
        if target is None or target.status != "active":
            async with self._pool.acquire() as conn:
                await store.cancel(conn, task.delivery_id)
            log.info("delivery cancelled", reason="subscription not active")
            return
        self._endpoint_of[task.subscription_id] = target.endpoint
        await self._turn(target.endpoint, time.monotonic() + _SLOT_WAIT)
        health = self._health(target.endpoint)
        now = time.monotonic()
        verdict = health.verdict(now)
        if verdict is Verdict.PARK:
            await self._tasks.later(task, self._schedule.tier_for(self._schedule.park))
            metrics.PARKED.inc()
            return
        if verdict is Verdict.SKIP:
            await self._settle(
                task, target, Outcome(status=None, latency_ms=0.0, error=health.reason(now)), skipped=True
            )
            return
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
                held = msgspec.structs.replace(task, not_before=time.time() + held_for)
                await self._tasks.later(held, self._schedule.tier_for(held_for))
                return
        started = health.started(now)
        outcome: Outcome | None = None
        try:
            outcome = await self._post(task, target)
        finally:
            answered = outcome is not None and outcome.status is not None and outcome.status < 500
            finished = time.monotonic()
            health.finished(started, finished, answered_below_500=answered)
            metrics.ATTEMPT_SECONDS.observe(finished - started)
            self._wake(target.endpoint)
            if health.idle and not self._waiting.get(target.endpoint):
                self._endpoints.pop(target.endpoint, None)
        await self._settle(task, target, outcome)

    async def _follow_up(self, task: DeliveryTask, target: store.Target, state: store.DeliveryState) -> None:
        if state.status == "pending" and state.next_attempt_at is not None:
            not_before = state.next_attempt_at.timestamp()
            retry = msgspec.structs.replace(
                task, step=task.step + 1, not_before=not_before, made=state.attempts
            )
            await self._tasks.later(retry, self._schedule.tier_for(max(0.0, not_before - time.time())))
        elif state.status == "failed" and state.last_outcome == "failed":
            outcome = Outcome(status=state.last_status, latency_ms=0.0, error=state.last_error)
            await self._publish_failed(task, target, outcome, state.attempts, state.updated_at)
        elif state.status == "failed" and state.last_outcome == "gone":
            await self._publish_disabled(task, target, state.updated_at)
        log.info(
            "follow-up of an earlier attempt published again", status=state.status, attempts=state.attempts
        )

    async def _turn(self, endpoint: str, deadline: float) -> bool:
        """False when the endpoint is still at its limit (PARK) by `deadline` or too many tasks are
        already waiting for it; True when it is not (GO, or SKIP: that verdict is the caller's)."""
        waiting = self._waiting.setdefault(endpoint, collections.deque())
        while self._health(endpoint).verdict(time.monotonic()) is Verdict.PARK:
            if len(waiting) >= self._settings.per_endpoint * _WAITERS_PER_SLOT:
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
        self, task: DeliveryTask, target: store.Target, outcome: Outcome, *, skipped: bool = False
    ) -> None:
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
        if delay is not None:
            retry = msgspec.structs.replace(
                task, step=task.step + 1, not_before=time.time() + delay, made=number
            )
            await self._tasks.later(retry, self._schedule.tier_for(delay))
        metrics.ATTEMPTS.labels("skipped" if skipped and kind == "retry" else kind).inc()
        if kind == "failed":
            metrics.FAILED.inc()
            await self._publish_failed(task, target, outcome, number, now)
        if disabled:
            metrics.DISABLED.inc()
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
