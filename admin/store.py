"""The admin API's reads and writes in PostgreSQL. Rows become the Structs of admin.wire."""

import uuid
from datetime import datetime
from typing import Any

import msgspec

from admin import wire
from common.db import DbConn
from gradebook.config import decode_destination, encode_destination, kind_of, url_of
from schemas.event import decode_event
from subscribers.signing import mask_secret

_SUBSCRIPTION = """
SELECT s.id::text, s.url, e.url AS endpoint, s.description, s.vendors, s.sources, s.event_types,
       s.status, s.status_reason, s.status_changed_at, s.created_at, s.updated_at,
       coalesce((SELECT json_agg(json_build_object('secret', k.secret, 'created_at', k.created_at,
                                                   'expires_at', k.expires_at)
                                 ORDER BY k.created_at DESC, k.id DESC)
                 FROM subscription_secrets k
                 WHERE k.subscription_id = s.id AND (k.expires_at IS NULL OR k.expires_at > now())),
                '[]'::json)::text AS secrets,
       s.rate_limit, s.rate_limit_per, s.delivery_order, s.destination_kind, s.destination::text
FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
"""

# An endpoint that is subscribed (again) starts afresh: its failure count is forgotten.
_ENDPOINT = """
INSERT INTO endpoints (url) VALUES ($1)
ON CONFLICT (url) DO UPDATE SET consecutive_failures = 0, failing_since = NULL, last_error = NULL
RETURNING id
"""


class _Secret(msgspec.Struct, frozen=True):
    secret: str
    created_at: datetime
    expires_at: datetime | None = None


_secrets = msgspec.json.Decoder(list[_Secret])


def _subscription(row: Any) -> wire.Subscription:
    record = dict(row)
    count, per = record.pop("rate_limit"), record.pop("rate_limit_per")
    record["rate_limit"] = None if count is None else wire.RateLimit(count=count, per=per)
    destination = record.pop("destination")
    record["destination"] = None if destination is None else decode_destination(destination)
    secrets = _secrets.decode(record.pop("secrets"))
    record["secrets"] = [
        wire.SecretInfo(masked=mask_secret(s.secret), created_at=s.created_at, expires_at=s.expires_at)
        for s in secrets
    ]
    return msgspec.convert(record, wire.Subscription)


async def create_subscription(
    conn: DbConn, body: wire.SubscriptionCreate, endpoint: str, secret: str
) -> wire.Subscription:
    """`endpoint`: the normalized URL, of `body.url` or of its destination."""
    url = body.url if body.destination is None else url_of(body.destination)
    subscription_id = str(uuid.uuid4())
    async with conn.transaction():
        endpoint_id = await conn.fetchval(_ENDPOINT, endpoint)
        await conn.execute(
            "INSERT INTO subscriptions (id, url, endpoint_id, description, vendors, sources, event_types,"
            " rate_limit, rate_limit_per, delivery_order, destination_kind, destination)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)",
            subscription_id,
            url,
            endpoint_id,
            body.description,
            [v.value for v in body.vendors],
            body.sources,
            body.event_types,
            body.rate_limit.count if body.rate_limit else None,
            body.rate_limit.per if body.rate_limit else None,
            body.delivery_order,
            "webhook" if body.destination is None else kind_of(body.destination),
            None if body.destination is None else encode_destination(body.destination).decode(),
        )
        await conn.execute(
            "INSERT INTO subscription_secrets (subscription_id, secret) VALUES ($1, $2)",
            subscription_id,
            secret,
        )
    found = await get_subscription(conn, subscription_id)
    assert found is not None
    return found


async def get_subscription(conn: DbConn, subscription_id: str) -> wire.Subscription | None:
    row = await conn.fetchrow(_SUBSCRIPTION + " WHERE s.id = $1::uuid", subscription_id)
    return None if row is None else _subscription(row)


async def list_subscriptions(conn: DbConn, query: wire.SubscriptionsQuery) -> list[wire.Subscription]:
    rows = await conn.fetch(
        _SUBSCRIPTION + " WHERE ($1::text IS NULL OR s.status = $1) ORDER BY s.created_at, s.id LIMIT $2",
        query.status,
        query.limit,
    )
    return [_subscription(row) for row in rows]


async def update_subscription(
    conn: DbConn, subscription_id: str, body: wire.SubscriptionUpdate, endpoint: str | None
) -> wire.Subscription | None:
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT status, endpoint_id FROM subscriptions WHERE id = $1::uuid FOR UPDATE", subscription_id
        )
        if current is None:
            return None
        endpoint_id = current["endpoint_id"]
        reactivated = body.status == "active" and current["status"] != "active"
        if endpoint is not None:
            endpoint_id = await conn.fetchval(_ENDPOINT, endpoint)
        elif reactivated:
            await conn.execute(
                "UPDATE endpoints SET consecutive_failures = 0, failing_since = NULL, last_error = NULL WHERE id = $1",
                endpoint_id,
            )
        status_changed = body.status is not None and body.status != current["status"]
        limit = body.rate_limit
        await conn.execute(
            """
            UPDATE subscriptions SET
                url = coalesce($2, url),
                endpoint_id = $3,
                description = coalesce($4, description),
                vendors = coalesce($5, vendors),
                sources = coalesce($6, sources),
                event_types = coalesce($7, event_types),
                status = coalesce($8, status),
                status_reason = CASE WHEN $9 THEN $10 ELSE status_reason END,
                status_changed_at = CASE WHEN $9 THEN now() ELSE status_changed_at END,
                rate_limit = CASE WHEN $11 THEN $12 ELSE rate_limit END,
                rate_limit_per = CASE WHEN $11 THEN $13 ELSE rate_limit_per END,
                delivery_order = coalesce($14, delivery_order),
                destination = coalesce($15::jsonb, destination),
                updated_at = now()
            WHERE id = $1::uuid
            """,
            subscription_id,
            body.url if body.destination is None else url_of(body.destination),
            endpoint_id,
            body.description,
            None if body.vendors is None else [v.value for v in body.vendors],
            body.sources,
            body.event_types,
            body.status,
            status_changed,
            "disabled by an operator" if body.status == "disabled" else None,
            not isinstance(limit, msgspec.UnsetType),
            limit.count if isinstance(limit, wire.RateLimit) else None,
            limit.per if isinstance(limit, wire.RateLimit) else None,
            body.delivery_order,
            None if body.destination is None else encode_destination(body.destination).decode(),
        )
    return await get_subscription(conn, subscription_id)


async def delete_subscription(conn: DbConn, subscription_id: str) -> bool:
    return (
        await conn.fetchval("DELETE FROM subscriptions WHERE id = $1::uuid RETURNING true", subscription_id)
        is not None
    )


async def rotate_secret(
    conn: DbConn, subscription_id: str, secret: str, overlap_seconds: int
) -> datetime | None:
    """Adds `secret` as the current one; the live ones keep signing for `overlap_seconds`. Returns when
    they stop, or None if there is no such subscription."""
    async with conn.transaction():
        found = await conn.fetchval(
            "SELECT now() + make_interval(secs => $2) FROM subscriptions WHERE id = $1::uuid FOR UPDATE",
            subscription_id,
            float(overlap_seconds),
        )
        if found is None:
            return None
        await conn.execute(
            "UPDATE subscription_secrets SET expires_at = least(coalesce(expires_at, 'infinity'), $2)"
            " WHERE subscription_id = $1::uuid AND (expires_at IS NULL OR expires_at > now())",
            subscription_id,
            found,
        )
        await conn.execute(
            "INSERT INTO subscription_secrets (subscription_id, secret) VALUES ($1, $2)",
            subscription_id,
            secret,
        )
        await conn.execute("UPDATE subscriptions SET updated_at = now() WHERE id = $1::uuid", subscription_id)
    return found  # type: ignore[no-any-return]


_EVENT_COLUMNS = """
SELECT id::text, vendor, type, status, exam_key, occurred_at, received_at, stored_at, applied,
       payload::text AS payload
FROM events
"""


def _stored_event(row: Any) -> wire.StoredEvent:
    record = dict(row)
    record["event"] = decode_event(record.pop("payload").encode())
    return msgspec.convert(record, wire.StoredEvent, from_attributes=True)


async def query_events(conn: DbConn, query: wire.EventsQuery) -> list[wire.StoredEvent]:
    rows = await conn.fetch(
        _EVENT_COLUMNS
        + """
        WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR exam_key = $2)
          AND ($3::text IS NULL OR type = $3) AND ($4::timestamptz IS NULL OR stored_at >= $4)
          AND ($5::timestamptz IS NULL OR stored_at < $5)
        ORDER BY """
        + ("stored_at DESC, id DESC" if query.order == "newest" else "stored_at, id")
        + """ LIMIT $6
        """,
        query.vendor.value if query.vendor else None,
        query.exam_key,
        query.type,
        query.since,
        query.until,
        query.limit,
    )
    return [_stored_event(row) for row in rows]


async def get_exam(conn: DbConn, vendor: str, key: str) -> wire.Exam | None:
    row = await conn.fetchrow(
        "SELECT vendor, exam_key, status, occurred_at, event_id::text, updated_at FROM exams"
        " WHERE vendor = $1 AND exam_key = $2",
        vendor,
        key,
    )
    if row is None:
        return None
    history = await conn.fetch(
        _EVENT_COLUMNS + " WHERE vendor = $1 AND exam_key = $2 ORDER BY stored_at, id", vendor, key
    )
    return msgspec.convert(
        {**dict(row), "history": [_stored_event(r) for r in history]}, wire.Exam, from_attributes=True
    )


async def deliveries(conn: DbConn, subscription_id: str, query: wire.DeliveriesQuery) -> list[wire.Delivery]:
    rows = await conn.fetch(
        """
        SELECT id::text, event_id::text, event_type, vendor, exam_key, status, attempts, last_status,
               last_error, next_attempt_at, created_at, updated_at
        FROM deliveries
        WHERE subscription_id = $1::uuid AND ($2::text IS NULL OR status = $2)
          AND ($3::timestamptz IS NULL OR created_at >= $3)
        ORDER BY created_at DESC, id LIMIT $4
        """,
        subscription_id,
        query.status,
        query.since,
        query.limit,
    )
    attempts: dict[str, list[wire.AttemptRow]] = {row["id"]: [] for row in rows}
    if attempts:
        for a in await conn.fetch(
            "SELECT delivery_id::text, attempt, attempted_at, status_code, latency_ms, error, outcome,"
            " next_attempt_at FROM delivery_attempts WHERE delivery_id = ANY($1::uuid[]) ORDER BY attempt, id",
            list(attempts),
        ):
            record = dict(a)
            attempts[record.pop("delivery_id")].append(msgspec.convert(record, wire.AttemptRow))
    return [msgspec.convert({**dict(row), "attempt_log": attempts[row["id"]]}, wire.Delivery) for row in rows]


async def subscription_status(conn: DbConn, subscription_id: str) -> str | None:
    status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1::uuid", subscription_id)
    return None if status is None else str(status)


_REQUEUE = """
SELECT delivery_id::text, event_id::text, attempts, status FROM deliveries_requeue($1::uuid[])
"""


async def replay_one(
    conn: DbConn, subscription_id: str, event_id: str
) -> list[tuple[str, str, int, str]] | None:
    """The event's delivery to the subscription sent again (created if there was none), in its place in
    the exam's order: [(delivery id, event id, attempts so far, pending | waiting)], or [] while it is
    being attempted; None if the event is unknown."""
    async with conn.transaction():
        delivery_id = await conn.fetchval(
            """
            INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, vendor, exam_key,
                                    exam_seq, exam_version)
            SELECT $1, $2, e.id, e.type, 'cancelled', e.vendor, e.exam_key, e.exam_seq, e.exam_version
            FROM events e WHERE e.id = $3::uuid
            ON CONFLICT (subscription_id, event_id) DO UPDATE SET updated_at = deliveries.updated_at
            RETURNING id::text
            """,
            str(uuid.uuid4()),
            subscription_id,
            event_id,
        )
        if delivery_id is None:
            return None
        rows = await conn.fetch(_REQUEUE, [delivery_id])
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def replay_failed(
    conn: DbConn, subscription_id: str, since: datetime
) -> list[tuple[str, str, int, str]]:
    """Every failed delivery since `since` whose event is still stored, sent again (as `replay_one`)."""
    ids = await conn.fetch(
        """
        SELECT d.id FROM deliveries d
        WHERE d.subscription_id = $1::uuid AND d.status = 'failed' AND d.created_at >= $2
          AND EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id)
        """,
        subscription_id,
        since,
    )
    rows = await conn.fetch(_REQUEUE, [r["id"] for r in ids])
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def unqueue(conn: DbConn, delivery_ids: list[str]) -> None:
    """Deliveries set pending for a replay whose task could not be published: failed again."""
    await conn.execute(
        "UPDATE deliveries SET status = 'failed', last_error = 'replay not queued: broker unavailable',"
        " updated_at = now() WHERE id = ANY($1::uuid[]) AND status = 'pending'",
        delivery_ids,
    )
