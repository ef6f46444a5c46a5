"""Retention: what is past its period is purged, in small batches, each its own short transaction.

Each batch claims its rows with FOR UPDATE SKIP LOCKED, so several replicas share the work without
waiting on each other, and a router or delivery worker touching a row in the batch is never blocked
for longer than one batch. By default a purged row becomes a tombstone: what it held about a person
(a raw body, an event's candidate, scores and attributes, a subscriber's error text) is removed and
`purged_at` set; its ids, times and outcome stay as the audit trail. With `drop_audit` the rows are
deleted instead, except an exam's current event (tombstoned). Exams, the current state, are never
purged here: only an erasure changes them.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import prometheus_client
import structlog

from common.errors import TRANSIENT
from workers.retention.settings import RetentionSettings

log = structlog.get_logger("retention")

PURGED = prometheus_client.Counter(
    "resultbus_retention_purged",
    "Rows past their retention period, by kind (raw, rejected, events, deliveries) and action "
    "(tombstoned: content removed, row kept; deleted).",
    ["kind", "action"],
)
ROUND_SECONDS = prometheus_client.Gauge(
    "resultbus_retention_round_seconds", "How long the last retention round took."
)
LAST_ROUND = prometheus_client.Gauge(
    "resultbus_retention_last_round_timestamp_seconds", "Unix time the last retention round finished."
)

# The raw webhooks of one outcome stored before $1, not yet purged.
_RAW_DUE = """
SELECT id FROM raw_webhooks
WHERE outcome = $3 AND purged_at IS NULL AND stored_at < $1
ORDER BY stored_at LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_RAW_TOMBSTONE = f"""
WITH due AS ({_RAW_DUE}), done AS (
    UPDATE raw_webhooks r SET body = '\\x'::bytea, reason = CASE WHEN r.reason IS NULL THEN NULL
                                                          ELSE 'removed by retention' END,
                              purged_at = now(), purged_by = 'retention'
    FROM due WHERE r.id = due.id RETURNING 1
)
SELECT 0 AS deleted, count(*) AS tombstoned FROM done
"""

# Told to drop the audit trail too: also the tombstones retention left while their events lived (the
# events are kept longer than raw bodies by default), once no event refers to them any more.
_RAW_DROP_DUE = """
SELECT id FROM raw_webhooks r
WHERE outcome = $3 AND stored_at < $1
  AND (purged_at IS NULL
       OR (purged_by = 'retention' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = r.id)))
ORDER BY stored_at LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# A raw webhook that events were made from stays (a tombstone) while they do.
_RAW_DROP = f"""
WITH due AS ({_RAW_DROP_DUE}), referenced AS (
    SELECT due.id, EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = due.id) AS used FROM due
), gone AS (
    DELETE FROM raw_webhooks r USING referenced x WHERE r.id = x.id AND NOT x.used RETURNING 1
), kept AS (
    UPDATE raw_webhooks r SET body = '\\x'::bytea, reason = NULL, purged_at = now(), purged_by = 'retention'
    FROM referenced x WHERE r.id = x.id AND x.used AND r.purged_at IS NULL RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM kept) AS tombstoned
"""

_EVENTS_DUE = """
SELECT e.id,
       EXISTS (SELECT 1 FROM exams x
               WHERE x.vendor = e.vendor AND x.exam_key = e.exam_key AND x.event_id = e.id) AS current
FROM events e
WHERE e.purged_at IS NULL AND e.stored_at < $1
ORDER BY e.stored_at LIMIT $2
FOR UPDATE OF e SKIP LOCKED
"""

# What an event's tombstone drops: everything about the person, scores included. Its ids, type,
# status and times stay, and it still reads as a result event.
EVENT_PERSONAL = ["candidate", "attributes", "result"]

_EVENTS = f"""
WITH due AS ({_EVENTS_DUE}), gone AS (
    DELETE FROM events e USING due WHERE e.id = due.id AND $3 AND NOT due.current RETURNING 1
), kept AS (
    UPDATE events e SET payload = e.payload - $4::text[], purged_at = now(), purged_by = 'retention'
    FROM due WHERE e.id = due.id AND (due.current OR NOT $3) RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM kept) AS tombstoned
"""

_DELIVERIES_DUE = """
SELECT id FROM deliveries
WHERE purged_at IS NULL AND status NOT IN ('pending', 'waiting', 'held') AND updated_at < $1
ORDER BY updated_at LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_DELIVERIES = f"""
WITH due AS ({_DELIVERIES_DUE}), gone AS (
    DELETE FROM deliveries d USING due WHERE d.id = due.id AND $3 RETURNING 1
), attempts AS (
    UPDATE delivery_attempts a SET error = NULL
    FROM due WHERE a.delivery_id = due.id AND NOT $3 AND a.error IS NOT NULL AND a.outcome <> 'rate_limited'
    RETURNING 1
), kept AS (
    UPDATE deliveries d SET last_error = NULL, purged_at = now()
    FROM due WHERE d.id = due.id AND NOT $3 RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM kept) AS tombstoned,
       (SELECT count(*) FROM attempts) AS attempts
"""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Retention:
    def __init__(
        self, settings: RetentionSettings, pool: asyncpg.Pool, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._clock = clock

    async def run(self, stopping: asyncio.Event) -> None:
        """A round at start, then one every `interval`, until `stopping`. A round that fails for the
        database is tried again at the next; anything else ends the task (and the process)."""
        while not stopping.is_set():
            try:
                await self.round(stopping)
            except TRANSIENT as error:
                log.warning("retention round failed, trying again later", error=repr(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.interval):
                    await stopping.wait()

    async def round(self, stopping: asyncio.Event | None = None) -> dict[str, dict[str, int]]:
        """Purges everything due now; returns the counts by kind and action."""
        started = time.monotonic()
        now = self._clock()
        s = self._settings
        kinds: list[tuple[str, float, str, tuple[object, ...]]] = [
            ("raw", s.raw, _RAW_DROP if s.drop_audit else _RAW_TOMBSTONE, ("accepted",)),
            ("rejected", s.rejected, _RAW_DROP if s.drop_audit else _RAW_TOMBSTONE, ("rejected",)),
            ("events", s.events, _EVENTS, (s.drop_audit, EVENT_PERSONAL)),
            ("deliveries", s.deliveries, _DELIVERIES, (s.drop_audit,)),
        ]
        counts: dict[str, dict[str, int]] = {}
        for kind, period, sql, args in kinds:
            if period <= 0:
                continue  # kept for ever
            cut = now - timedelta(seconds=period)
            counts[kind] = done = {"deleted": 0, "tombstoned": 0}
            while stopping is None or not stopping.is_set():
                row = await self._pool.fetchrow(sql, cut, s.batch, *args)
                assert row is not None
                for action in ("deleted", "tombstoned"):
                    done[action] += row[action]
                    PURGED.labels(kind, action).inc(row[action])
                if row["deleted"] + row["tombstoned"] < s.batch:
                    break
                log.info("retention batch", kind=kind, **done)
                await asyncio.sleep(s.pause)
        elapsed = time.monotonic() - started
        ROUND_SECONDS.set(elapsed)
        LAST_ROUND.set_to_current_time()
        log.info("retention round", seconds=round(elapsed, 3), drop_audit=s.drop_audit, **counts)
        return counts
