"""Rounds of verification calls: claim the due endpoints, check them concurrently (bounded), record
each outcome as it comes, unsubscribe the dead, and log one summary line per round."""

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from datetime import datetime

import asyncpg
import msgspec
import structlog

from common import logs
from common.consumer import UNEXPECTED_ERRORS, describe
from common.errors import TRANSIENT
from gradebook.send import Sender
from schemas.delivery import SubscriptionUnsubscribed
from subscribers.poster import Outcome, Poster
from workers.checker import metrics, store
from workers.checker.clock import Clock, system_clock
from workers.checker.notify import Notifier
from workers.checker.settings import CheckerSettings
from workers.checker.store import DueEndpoint
from workers.checker.verify import verify

log = structlog.get_logger("checker")


class RoundSummary(msgspec.Struct, frozen=True, kw_only=True):
    round_id: str
    checked: int  # endpoints called
    alive: int  # answered 2xx
    failed: int  # timeout, connection error or another status
    unsubscribed: int  # subscriptions dropped (on `endpoints_dropped` endpoints)
    endpoints_dropped: int
    errors: int  # checks whose outcome could not be recorded (database trouble): retried next interval
    duration_ms: float


class Checker:
    def __init__(
        self,
        settings: CheckerSettings,
        pool: asyncpg.Pool,
        poster: Poster,
        sender: Sender,
        notifier: Notifier,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._poster = poster
        self._sender = sender
        self._notifier = notifier
        self._clock = clock
        self._gate = asyncio.Semaphore(settings.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`: one per poll, or at once after a full batch (a backlog)."""
        while not stop.is_set():
            backlog = False
            try:
                summary = await self.run_round()
                backlog = summary.checked >= self._settings.batch
            except TRANSIENT as error:
                log.warning("check round failed, trying again at the next poll", error=repr(error))
            if not backlog:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll)

    async def run_round(self) -> RoundSummary:
        started = time.perf_counter()
        round_id = uuid.uuid4().hex[:12]
        with logs.bound(round_id=round_id):
            async with self._pool.acquire() as conn:
                due = await store.claim_due(
                    conn, self._clock(), self._settings.interval, self._settings.batch
                )
            counts: Counter[str] = Counter()
            await asyncio.gather(*(self._check_one(endpoint, counts) for endpoint in due))
            summary = RoundSummary(
                round_id=round_id,
                checked=len(due),
                alive=counts["alive"],
                failed=counts["failed"],
                unsubscribed=counts["unsubscribed"],
                endpoints_dropped=counts["endpoints_dropped"],
                errors=counts["errors"],
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            _count(summary)
            # Quiet polls (nothing due) stay at debug: at a one-minute poll they are most rounds.
            log.log(20 if summary.checked else 10, "check round", **msgspec.structs.asdict(summary))
        return summary

    async def _check_one(self, endpoint: DueEndpoint, counts: Counter[str]) -> None:
        """One endpoint's check is its own unit of work: whatever it raises is its outcome (logged,
        counted, and the endpoint checked again next interval), never its neighbours' nor the round's."""
        try:
            await self._check(endpoint, counts)
        except Exception as error:
            counts["errors"] += 1
            UNEXPECTED_ERRORS.labels("checker").inc()
            log.error(
                "check failed unexpectedly", endpoint=endpoint.url, error=describe(error), exc_info=error
            )

    async def _check(self, endpoint: DueEndpoint, counts: Counter[str]) -> None:
        with logs.bound(endpoint=endpoint.url, endpoint_id=endpoint.id):
            async with self._gate:
                outcome = await verify(self._poster, self._sender, endpoint)
            counts["alive" if outcome.ok else "failed"] += 1
            now = self._clock()
            try:
                async with self._pool.acquire() as conn:
                    if outcome.ok:
                        await store.record_alive(conn, endpoint.id, now)
                        failure = None
                    else:
                        failure = await store.record_failure(
                            conn, endpoint.id, now, _error_text(outcome), self._settings.failures
                        )
            except TRANSIENT as error:
                counts["errors"] += 1
                log.warning("check not recorded", error=repr(error))
                return
            if failure is None:
                log.info("endpoint alive", status=outcome.status, latency_ms=outcome.latency_ms)
                return
            log.warning(
                "endpoint check failed",
                status=outcome.status,
                error=outcome.error,
                latency_ms=outcome.latency_ms,
                failures=failure.failures,
                failing_since=failure.failing_since.isoformat(),
            )
            if failure.unsubscribed:
                counts["endpoints_dropped"] += 1
                counts["unsubscribed"] += len(failure.unsubscribed)
                await self._announce(endpoint, outcome, failure, now)

    async def _announce(
        self, endpoint: DueEndpoint, outcome: Outcome, failure: store.Failure, now: datetime
    ) -> None:
        assert failure.reason is not None
        log.warning("endpoint dead, subscriptions unsubscribed", subscriptions=failure.unsubscribed)
        for subscription_id in failure.unsubscribed:
            await self._notifier.announce(
                SubscriptionUnsubscribed(
                    id=str(uuid.uuid4()),
                    subscription_id=subscription_id,
                    endpoint=endpoint.url,
                    reason=failure.reason,
                    failed_checks=failure.failures,
                    failing_since=failure.failing_since,
                    last_error=_error_text(outcome),
                    unsubscribed_at=now,
                )
            )


def _count(summary: RoundSummary) -> None:
    metrics.CHECKS.labels("alive").inc(summary.alive)
    metrics.CHECKS.labels("failed").inc(summary.failed)
    metrics.UNSUBSCRIBED.inc(summary.unsubscribed)
    metrics.ENDPOINTS_DROPPED.inc(summary.endpoints_dropped)
    metrics.UNRECORDED.inc(summary.errors)
    metrics.ROUND_SECONDS.observe(summary.duration_ms / 1000)


def _error_text(outcome: Outcome) -> str:
    return outcome.error or f"HTTP {outcome.status}"
