"""The console's reads: each page's rows in a few statements, each served by an index (see
bench/console.py for the figures and workers/migrations/008_console_indexes.sql for the indexes).

Rows are returned as asyncpg records: the templates read them by column name."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from admin.rejected import rejected_rows
from common.db import DbConn
from common.rejected import KEYS, RejectedFilter
from schemas.vendor import Vendor

Row = asyncpg.Record
VENDORS: Final = [v.value for v in Vendor]
# Raw bodies are shown up to this size; the rest is cut (and said so).
BODY_SHOWN: Final = 64 * 1024

_RECEIVED = """
SELECT vendor, outcome, date_trunc('hour', received_at) AS hour, count(*) AS n,
       count(*) FILTER (WHERE received_at >= $2) AS last_hour
FROM raw_webhooks WHERE received_at >= $1
GROUP BY 1, 2, 3
"""

# By arrival, as every list of rejected webhooks is (a replay that is rejected again is not new).
_REJECTED_COUNTS = """
SELECT count(*) AS total, count(*) FILTER (WHERE received_at >= $1) AS last_day
FROM raw_webhooks WHERE outcome = 'rejected'
"""

_SUBSCRIPTIONS_BY_STATUS = "SELECT status, count(*) AS n FROM subscriptions GROUP BY status ORDER BY status"

_CHECKER = """
SELECT max(last_checked_at) AS last_checked_at, min(next_check_at) AS next_check_at,
       count(*) AS endpoints,
       count(*) FILTER (WHERE failing_since IS NOT NULL) AS failing,
       count(*) FILTER (WHERE last_checked_at >= $1) AS checked_last_hour
FROM endpoints e
WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.endpoint_id = e.id AND s.status = 'active')
"""


async def received(conn: DbConn, since: datetime, hour_ago: datetime) -> list[Row]:
    return await conn.fetch(_RECEIVED, since, hour_ago)


async def rejected_counts(conn: DbConn, day_ago: datetime) -> Row:
    row = await conn.fetchrow(_REJECTED_COUNTS, day_ago)
    assert row is not None
    return row


async def subscriptions_by_status(conn: DbConn) -> list[Row]:
    return await conn.fetch(_SUBSCRIPTIONS_BY_STATUS)


async def checker(conn: DbConn, hour_ago: datetime) -> Row:
    row = await conn.fetchrow(_CHECKER, hour_ago)
    assert row is not None
    return row


# -- finding an exam ---------------------------------------------------------------------------------

# What an exam can be found by; each matches an expression index of migration 008.
SEARCHES: Final = {
    "email": "lower(e.payload->'candidate'->>'email') = lower($1)",
    "external_id": "e.payload->'candidate'->>'external_id' = $1",
    "test_id": "e.payload->'exam'->>'test_id' = $1",
    "key": "e.exam_key = $1",
}

_FOUND = """
SELECT f.vendor, f.exam_key, f.events, f.last_seen, x.status, x.updated_at
FROM (
    SELECT e.vendor, e.exam_key, count(*) AS events, max(e.stored_at) AS last_seen
    FROM events e
    WHERE {condition} AND e.vendor = ANY($2::text[]) AND e.exam_key IS NOT NULL
    GROUP BY e.vendor, e.exam_key
) f LEFT JOIN exams x ON x.vendor = f.vendor AND x.exam_key = f.exam_key
ORDER BY f.last_seen DESC, f.vendor, f.exam_key
LIMIT $3 OFFSET $4
"""


async def find_exams(
    conn: DbConn, by: str, value: str, vendors: Sequence[str], limit: int, offset: int
) -> list[Row]:
    # `by` is one of SEARCHES' keys (checked by the caller): the only text spliced into the SQL.
    return await conn.fetch(_FOUND.format(condition=SEARCHES[by]), value, list(vendors), limit + 1, offset)


async def exam(conn: DbConn, vendor: str, key: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT vendor, exam_key, status, occurred_at, event_id::text, result::text, candidate::text,"
        " updated_at FROM exams WHERE vendor = $1 AND exam_key = $2",
        vendor,
        key,
    )


_HISTORY = """
SELECT e.id::text, e.type, e.status, e.occurred_at, e.received_at, e.stored_at, e.applied,
       e.payload::text AS payload, e.webhook_id::text,
       w.source, w.content_type, w.received_at AS webhook_received_at, w.vendor_event, w.remote,
       w.outcome, w.reason, length(w.body) AS size, substring(w.body FROM 1 FOR $3) AS body
FROM events e LEFT JOIN raw_webhooks w ON w.id = e.webhook_id
WHERE e.vendor = $1 AND e.exam_key = $2
ORDER BY e.stored_at, e.id
"""


async def history(conn: DbConn, vendor: str, key: str) -> list[Row]:
    return await conn.fetch(_HISTORY, vendor, key, BODY_SHOWN)


_DELIVERIES_OF_EVENTS = """
SELECT d.id::text, d.event_id::text, d.subscription_id::text, s.url, s.description, d.status,
       d.attempts, d.last_status, d.last_error, d.next_attempt_at, d.created_at, d.updated_at
FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.event_id = ANY($1::uuid[])
ORDER BY d.created_at, d.id
"""

_ATTEMPTS = """
SELECT delivery_id::text, attempt, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at
FROM delivery_attempts WHERE delivery_id = ANY($1::uuid[])
ORDER BY delivery_id, attempt, id
"""


async def deliveries_of_events(conn: DbConn, event_ids: list[str]) -> list[Row]:
    return await conn.fetch(_DELIVERIES_OF_EVENTS, event_ids) if event_ids else []


async def attempts(conn: DbConn, delivery_ids: list[str]) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        for row in await conn.fetch(_ATTEMPTS, delivery_ids):
            found[row["delivery_id"]].append(row)
    return found


# -- rejected webhooks ---------------------------------------------------------------------------


async def rejected(conn: DbConn, chosen: RejectedFilter, limit: int) -> list[Row]:
    """Newest first, `limit + 1` rows (one more says there is a next page), with the body's start
    and what it names (`keys`)."""
    return await rejected_rows(conn, chosen, limit=limit + 1, preview=240)


async def rejected_naming(conn: DbConn, key: str, vendors: Sequence[str], limit: int) -> list[Row]:
    """Rejected webhooks whose bodies name `key` (common.rejected.search_key), newest first."""
    return await rejected_rows(
        conn, RejectedFilter(vendors=list(vendors), keys=[key]), limit=limit + 1, preview=0
    )


async def rejected_sources(conn: DbConn) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT source FROM raw_webhooks WHERE outcome = 'rejected' ORDER BY source LIMIT 200"
    )
    return [str(r["source"]) for r in rows]


async def webhook(conn: DbConn, webhook_id: str) -> Row | None:
    """The webhook, with what its body names (`keys`: read for rejected ones, whose exam no event says)."""
    return await conn.fetchrow(
        "SELECT id::text, source, vendor, received_at, stored_at, content_type, vendor_event, remote,"
        " outcome, reason, length(body) AS size, substring(body FROM 1 FOR $2) AS body,"
        f" CASE WHEN outcome = 'rejected' THEN {KEYS} END AS keys"
        " FROM raw_webhooks WHERE id = $1::uuid",
        webhook_id,
        BODY_SHOWN,
    )


async def events_of_webhook(conn: DbConn, webhook_id: str) -> list[Row]:
    return await conn.fetch(
        "SELECT id::text, vendor, exam_key, type, status, stored_at FROM events"
        " WHERE webhook_id = $1::uuid ORDER BY stored_at, id",
        webhook_id,
    )


async def outcomes(conn: DbConn, webhook_ids: list[str]) -> list[Row]:
    return await conn.fetch(
        "SELECT id::text, source, vendor, outcome, reason, stored_at FROM raw_webhooks"
        " WHERE id = ANY($1::uuid[]) ORDER BY received_at, id",
        webhook_ids,
    )


# -- subscriptions -------------------------------------------------------------------------------

_SUBSCRIPTIONS = """
SELECT s.id::text, s.url, s.description, s.status, s.status_reason, s.status_changed_at, s.created_at,
       s.vendors, s.sources, s.event_types, s.delivery_order, s.destination_kind, s.destination::text,
       e.url AS endpoint, e.consecutive_failures, e.failing_since AS check_failing_since,
       e.last_checked_at, e.last_error AS check_error, e.next_check_at,
       h.succeeded, h.failed, h.pending, h.last_success,
       f.failing_since, le.last_error, le.last_status, le.updated_at AS last_error_at
FROM subscriptions s
JOIN endpoints e ON e.id = s.endpoint_id
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE d.status = 'failed') AS failed,
           count(*) FILTER (WHERE d.status = 'pending') AS pending,
           max(d.updated_at) FILTER (WHERE d.status = 'succeeded') AS last_success
    FROM deliveries d WHERE d.subscription_id = s.id AND d.created_at >= $1
) h
-- Failing since: the oldest failure after the last success (within the window).
CROSS JOIN LATERAL (
    SELECT min(d.updated_at) AS failing_since FROM deliveries d
    WHERE d.subscription_id = s.id AND d.status = 'failed' AND d.updated_at > coalesce(h.last_success, $1)
) f
LEFT JOIN LATERAL (
    SELECT d.last_error, d.last_status, d.updated_at FROM deliveries d
    WHERE d.subscription_id = s.id AND d.status = 'failed'
    ORDER BY d.updated_at DESC LIMIT 1
) le ON true
WHERE ($2::uuid IS NULL OR s.id = $2::uuid) AND ($3::text IS NULL OR s.status = $3)
ORDER BY s.created_at, s.id
LIMIT $4 OFFSET $5
"""


async def subscriptions(
    conn: DbConn,
    window_start: datetime,
    *,
    subscription_id: str | None = None,
    status: str | None = None,
    limit: int = 1,
    offset: int = 0,
) -> list[Row]:
    """Subscriptions with their delivery health since `window_start` and their endpoint's checks."""
    return await conn.fetch(_SUBSCRIPTIONS, window_start, subscription_id, status, limit + 1, offset)


async def secrets_summary(conn: DbConn, subscription_id: str) -> list[Row]:
    """When the live signing secrets were made and until when they sign: never the secrets."""
    return await conn.fetch(
        "SELECT created_at, expires_at FROM subscription_secrets WHERE subscription_id = $1::uuid"
        " AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC",
        subscription_id,
    )


_SUBSCRIPTION_DELIVERIES = """
SELECT d.id::text, d.event_id::text, d.event_type, d.status, d.attempts, d.last_status, d.last_error,
       d.next_attempt_at, d.created_at, d.updated_at, e.vendor, e.exam_key
FROM deliveries d LEFT JOIN events e ON e.id = d.event_id
WHERE d.subscription_id = $1::uuid AND ($2::text IS NULL OR d.status = $2)
  AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT $5
"""


async def subscription_deliveries(
    conn: DbConn, subscription_id: str, *, status: str | None, before: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    return await conn.fetch(
        _SUBSCRIPTION_DELIVERIES,
        subscription_id,
        status,
        before[0] if before else None,
        before[1] if before else None,
        limit + 1,
    )


def as_dict(row: Row) -> dict[str, Any]:
    return dict(row)
