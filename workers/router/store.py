"""Storing a batch of webhooks in one transaction: raw webhooks, their events, and exam state.

Several messages per transaction, each table written with one statement over arrays (unnest): this is
what lets one router keep up with thousands of webhooks a second.
"""

from collections.abc import Set
from datetime import datetime

import msgspec

from common.db import DbConn
from schemas.envelope import RawEnvelope
from schemas.event import ResultEvent, Status, encode_event
from schemas.topology import result_routing_key
from vendors.base import Normalized
from workers.router.orders import tie_to_orders
from workers.router.state import ExamKey, ExamState, Plan, Position, Stored, exam_keys, plan


class RawRow(msgspec.Struct, frozen=True, kw_only=True):
    """One raw webhook as stored; `vendor` is text because an unreadable envelope has none."""

    id: str
    source: str
    vendor: str
    received_at: datetime
    content_type: str
    body: bytes
    event: str | None = None
    remote: str | None = None
    reason: str | None = None  # set: stored as rejected

    @classmethod
    def of(cls, envelope: RawEnvelope, reason: str | None = None) -> "RawRow":
        return cls(
            id=envelope.id,
            source=envelope.source,
            vendor=envelope.vendor.value,
            received_at=envelope.received_at,
            content_type=envelope.content_type,
            body=envelope.body,
            event=envelope.event,
            remote=envelope.remote,
            reason=reason,
        )


class Outgoing(msgspec.Struct, frozen=True):
    """A stored event still to be published on the results exchange."""

    id: str
    routing_key: str
    body: bytes


_INSERT_RAW = """
INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, vendor_event, remote,
                          outcome, reason)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[],
                     $7::text[], $8::text[], $9::text[], $10::text[])
-- A redelivery changes nothing; a replay of a rejected webhook records its new outcome.
ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, stored_at = now()
WHERE raw_webhooks.outcome = 'rejected'
"""

_KNOWN_EVENTS = "SELECT id::text FROM events WHERE id = ANY($1::uuid[])"

_INSERT_EVENTS = """
INSERT INTO events (id, vendor, natural_key, webhook_id, type, status, exam_key, occurred_at,
                    received_at, applied, payload, exam_seq, exam_version)
SELECT i, v, k, w, t, s, e, o, r, a, p::jsonb, q, n
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::timestamptz[], $10::bool[], $11::text[], $12::bigint[], $13::int[])
     AS x(i, v, k, w, t, s, e, o, r, a, p, q, n)
ON CONFLICT DO NOTHING
RETURNING id::text
"""

# Placeholder rows first, then row locks, both in key order: two routers touching the same exams
# queue up behind each other instead of deadlocking.
_ENSURE_EXAMS = """
INSERT INTO exams (vendor, exam_key)
SELECT v, k FROM unnest($1::text[], $2::text[]) AS x(v, k) ORDER BY v, k
ON CONFLICT DO NOTHING
"""

_LOCK_EXAMS = """
SELECT vendor, exam_key, status, occurred_at, seq, version FROM exams
WHERE (vendor, exam_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY vendor, exam_key
FOR UPDATE
"""

# Every touched exam takes its new position; one that an event moved (`m`) its new current state too.
_UPDATE_EXAMS = """
UPDATE exams SET status = CASE WHEN x.m THEN x.s ELSE exams.status END,
                 occurred_at = CASE WHEN x.m THEN x.o ELSE exams.occurred_at END,
                 event_id = CASE WHEN x.m THEN x.i ELSE exams.event_id END,
                 result = CASE WHEN x.m THEN x.r::jsonb ELSE exams.result END,
                 candidate = CASE WHEN x.m THEN COALESCE(x.c::jsonb, exams.candidate) ELSE exams.candidate END,
                 seq = x.q, version = x.n, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::timestamptz[], $6::uuid[], $7::text[],
            $8::text[], $9::bigint[], $10::int[])
     AS x(v, k, m, s, o, i, r, c, q, n)
WHERE exams.vendor = x.v AND exams.exam_key = x.k
"""

_STORED_EVENTS = "SELECT id::text, payload::text FROM events WHERE id = ANY($1::uuid[])"

_json = msgspec.json.Encoder()
_stored_event = msgspec.json.Decoder(ResultEvent)


async def store_batch(
    conn: DbConn, raws: list[RawRow], events: list[Normalized], *, republish: Set[str] = frozenset()
) -> list[Outgoing]:
    """Stores the batch in one transaction; returns the events to publish: every new one, and those
    in `republish` that were stored before (by a delivery of the same message that may have died
    before publishing them)."""
    async with conn.transaction():
        await _insert_raw(conn, raws)
        fresh: dict[str, Normalized] = {}
        for normalized in events:
            fresh.setdefault(normalized.event.id, normalized)
        if not fresh:
            return []
        # In arrival order: where the vendor gives no time (iTEP), arrival decides the exam's state.
        candidates = [n.event for n in fresh.values()]
        # Exams first: once their rows are locked, no other router can store events for them, so
        # what is known below stays true until this transaction ends.
        current = await _lock_exams(conn, exam_keys(candidates))
        known = {row["id"] for row in await conn.fetch(_KNOWN_EVENTS, list(fresh))}
        new = [e for e in candidates if e.id not in known]
        changes = plan(current, new)
        new = [_placed(e, changes.positions) for e in new]
        placed = {e.id: e for e in new}
        # iTEP results of orders placed through resultbus carry the order; the orders follow.
        new = await tie_to_orders(conn, new, {k: placed[e.id] for k, e in changes.final.items()})
        encoded = {e.id: encode_event(e) for e in new}
        # One insert order everywhere (by id), so concurrent routers cannot deadlock on it.
        in_id_order = sorted(new, key=lambda e: e.id)
        inserted = await _insert_events(conn, in_id_order, fresh, encoded, changes)
        if changes.exams:
            await _update_exams(conn, changes)
        outgoing = [
            Outgoing(e.id, result_routing_key(e.vendor, e.type), encoded[e.id])
            for e in new
            if e.id in inserted
        ]
        again = [i for i in fresh if i in known and i in republish]
        if again:
            outgoing.extend(await _stored(conn, again))
        return outgoing


async def _insert_raw(conn: DbConn, rows: list[RawRow]) -> None:
    # A redelivered message may share a batch with its first delivery; an upsert may not touch one
    # row twice in a statement.
    rows = list({r.id: r for r in reversed(rows)}.values())
    await conn.execute(
        _INSERT_RAW,
        [r.id for r in rows],
        [r.source for r in rows],
        [r.vendor for r in rows],
        [r.received_at for r in rows],
        [r.content_type for r in rows],
        [r.body for r in rows],
        [r.event for r in rows],
        [r.remote for r in rows],
        ["accepted" if r.reason is None else "rejected" for r in rows],
        [r.reason for r in rows],
    )


async def _lock_exams(conn: DbConn, keys: list[ExamKey]) -> dict[ExamKey, Stored]:
    if not keys:
        return {}
    vendors, exam_keys_ = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(_ENSURE_EXAMS, vendors, exam_keys_)
    return {
        (row["vendor"], row["exam_key"]): Stored(
            ExamState(Status(row["status"]), row["occurred_at"]) if row["status"] else None,
            Position(row["seq"], row["version"], Status(row["status"]) if row["status"] else None),
        )
        for row in await conn.fetch(_LOCK_EXAMS, vendors, exam_keys_)
    }


def _placed(event: ResultEvent, positions: dict[str, Position]) -> ResultEvent:
    """The event as published: its exam's version and state after it."""
    at = positions.get(event.id)
    if at is None or event.exam is None:
        return event
    exam = msgspec.structs.replace(event.exam, version=at.version, state=at.state)
    return msgspec.structs.replace(event, exam=exam)


async def _insert_events(
    conn: DbConn,
    events: list[ResultEvent],
    fresh: dict[str, Normalized],
    encoded: dict[str, bytes],
    changes: Plan,
) -> set[str]:
    if not events:
        return set()
    rows = await conn.fetch(
        _INSERT_EVENTS,
        [e.id for e in events],
        [e.vendor.value for e in events],
        [fresh[e.id].natural_key for e in events],
        [e.webhook_id for e in events],
        [e.type for e in events],
        [e.status.value if e.status else None for e in events],
        [e.exam.key if e.exam else None for e in events],
        [e.occurred_at for e in events],
        [e.received_at for e in events],
        [e.id in changes.applied for e in events],
        [encoded[e.id].decode() for e in events],
        [changes.positions[e.id].seq if e.id in changes.positions else None for e in events],
        [changes.positions[e.id].version if e.id in changes.positions else None for e in events],
    )
    return {row["id"] for row in rows}


async def _update_exams(conn: DbConn, changes: Plan) -> None:
    keys = sorted(changes.exams)
    final = [changes.final.get(k) for k in keys]
    await conn.execute(
        _UPDATE_EXAMS,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [e is not None for e in final],
        [e.status.value if e and e.status else None for e in final],
        [e.occurred_at if e else None for e in final],
        [e.id if e else None for e in final],
        [_json.encode(e.result).decode() if e and e.result else None for e in final],
        [_json.encode(e.candidate).decode() if e and e.candidate else None for e in final],
        [changes.exams[k].seq for k in keys],
        [changes.exams[k].version for k in keys],
    )


async def _stored(conn: DbConn, ids: list[str]) -> list[Outgoing]:
    outgoing = []
    for row in await conn.fetch(_STORED_EVENTS, ids):
        # Publish what was stored (the first webhook that carried this event), in our own encoding.
        event = _stored_event.decode(row["payload"])
        key = result_routing_key(event.vendor, event.type)
        outgoing.append(Outgoing(row["id"], key, encode_event(event)))
    return outgoing
