"""Erasure by data subject, as a queued job: the admin API records the request (`POST /v1/erasures`,
status pending) and a retention worker runs it.

Why queued and not in the admin request: finding raw bodies means reading every stored one (they are
vendor bytes, not indexed fields), which is not bounded by anything the request knows; and a job that
dies half way is simply taken again (a lease), which an HTTP request cannot be. Several workers never
run one erasure at once (FOR UPDATE SKIP LOCKED on the claim, then the lease).

The job: find (events and exams by their candidate fields; raw webhooks that those events came from,
and any other body that concerns the candidate, see subject.py; the deliveries of those events; iTEP
orders where that table exists), then tombstone in small transactions, each also writing the running
counts into the record; then complete the record (the identifier itself is wiped from it) and publish
`resultbus.erasure.completed`. Running it again finds nothing more: idempotent. What arrives later
about the same candidate is new data, stored and delivered as usual.
"""

import asyncio
import contextlib
from typing import Any

import asyncpg
import msgspec
import prometheus_client
import structlog
from aio_pika.abc import AbstractExchange

from common import logs
from common.broker import persistent_message
from common.db import DbConn
from common.errors import TRANSIENT
from common.settings import PUBLISH_TIMEOUT
from schemas.erasure import ERASURE_COMPLETED_KEY, ErasureCompleted, ExamId, encode_erasure
from workers.retention.settings import RetentionSettings
from workers.retention.subject import Subject, body_concerns, needles

log = structlog.get_logger("erasure")

ERASED = prometheus_client.Counter("resultbus_erasure_rows", "Rows changed by erasures, by table.", ["table"])
ERASURES = prometheus_client.Counter("resultbus_erasures_completed", "Erasures completed.")

_CLAIM = """
WITH next AS (
    SELECT id FROM erasures
    WHERE status = 'pending' OR (status = 'running' AND lease_until < now())
    ORDER BY requested_at LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE erasures e SET status = 'running', started_at = coalesce(e.started_at, now()),
                      lease_until = now() + make_interval(secs => $1), attempts = e.attempts + 1,
                      keep_scores = $2
FROM next WHERE e.id = next.id
RETURNING e.id::text, e.subject_kind, e.subject, e.vendor, e.counts::text, e.touched::text
"""

# The candidate fields of a normalized event (payload) or an exam (candidate), by identifier kind.
_NAMED = """
CASE $1 WHEN 'email' THEN lower(trim({c}->>'email')) = lower(trim($3))
        WHEN 'candidate_id' THEN trim({c}->>'id') = trim($3)
        ELSE trim({c}->>'external_id') = trim($3) END
"""

_EVENTS = (
    "SELECT id::text, webhook_id::text, vendor, exam_key FROM events"
    " WHERE ($2::text IS NULL OR vendor = $2) AND " + _NAMED.format(c="(payload->'candidate')")
)
_EXAMS = "SELECT vendor, exam_key FROM exams WHERE ($2::text IS NULL OR vendor = $2) AND " + _NAMED.format(
    c="candidate"
)

# One page of raw webhooks in id order; the body only of those the cheap filter picks.
_RAW_PAGE = """
SELECT id::text, vendor, content_type, vendor_event, CASE WHEN hit THEN body END AS body
FROM (
    SELECT r.id, r.vendor, r.content_type, r.vendor_event, r.body,
           EXISTS (SELECT 1 FROM unnest($4::text[]) AS n(s)
                   WHERE strpos(lower(encode(r.body, 'escape')), n.s) > 0) AS hit
    FROM raw_webhooks r
    WHERE ($1::uuid IS NULL OR r.id > $1::uuid) AND ($2::text IS NULL OR r.vendor = $2)
    ORDER BY r.id LIMIT $3
) page
"""

_ERASE_RAW = """
UPDATE raw_webhooks SET body = '\\x'::bytea,
                        reason = CASE WHEN reason IS NULL THEN NULL ELSE 'removed by erasure' END,
                        purged_at = now(), purged_by = $2
WHERE id = ANY($1::uuid[]) AND (length(body) > 0 OR reason IS DISTINCT FROM 'removed by erasure')
RETURNING id::text
"""

# Ids, type, status and times stay; scores only when the configuration says so (never the link to
# the candidate's own score report).
_ERASE_EVENTS = """
UPDATE events SET payload = CASE WHEN $3 THEN (payload - ARRAY['candidate', 'attributes']) #- '{result,report_url}'
                                 ELSE payload - ARRAY['candidate', 'attributes', 'result'] END,
                  purged_at = now(), purged_by = $2
WHERE id = ANY($1::uuid[])
RETURNING id::text
"""

_ERASE_EXAMS = """
UPDATE exams x SET candidate = NULL, result = CASE WHEN $3 THEN x.result - 'report_url' ELSE NULL END,
                   erased_at = now()
FROM unnest($1::text[], $2::text[]) AS k(v, key)
WHERE x.vendor = k.v AND x.exam_key = k.key
RETURNING x.vendor, x.exam_key
"""

# A delivery not yet made (pending, waiting, or held for a gradebook) is cancelled, so that its task
# is dropped when it comes round (it would send what is left of the event), and so is every one of
# the same exams' still to be made: none waits behind a cancelled one for ever. Subscribers' error
# texts go too, and the holds (they name the candidate).
_ERASE_DELIVERIES = """
WITH exams AS (
    SELECT DISTINCT vendor, exam_key FROM deliveries WHERE event_id = ANY($1::uuid[]) AND exam_seq IS NOT NULL
), d AS (
    UPDATE deliveries SET status = CASE WHEN status IN ('pending', 'waiting', 'held') THEN 'cancelled' ELSE status END,
                          last_error = CASE WHEN status IN ('pending', 'waiting', 'held')
                                            THEN 'cancelled: the candidate was erased' ELSE NULL END,
                          updated_at = now()
    WHERE event_id = ANY($1::uuid[])
       OR (status IN ('pending', 'waiting', 'held') AND exam_seq IS NOT NULL
           AND (vendor, exam_key) IN (SELECT vendor, exam_key FROM exams))
    RETURNING id
), a AS (
    UPDATE delivery_attempts SET error = NULL
    WHERE delivery_id IN (SELECT id FROM d) AND error IS NOT NULL AND outcome <> 'rate_limited'
), h AS (
    DELETE FROM gradebook_holds WHERE delivery_id IN (SELECT id FROM d)
)
SELECT id::text FROM d
"""

_PROGRESS = "UPDATE erasures SET counts = $2::jsonb, touched = $3::jsonb, lease_until = now() + make_interval(secs => $4) WHERE id = $1::uuid"

_COMPLETE = """
UPDATE erasures SET status = 'completed', completed_at = now(), subject = NULL, lease_until = NULL,
                    counts = $2::jsonb, touched = $3::jsonb
WHERE id = $1::uuid
"""

_UNPUBLISHED = """
SELECT id::text, subject_kind, vendor, requested_at, completed_at, keep_scores, touched::text
FROM erasures WHERE status = 'completed' AND published_at IS NULL
ORDER BY completed_at LIMIT 20
FOR UPDATE SKIP LOCKED
"""

TABLES = ("raw_webhooks", "events", "exams", "deliveries", "itep_orders")


class Touched(msgspec.Struct, kw_only=True):
    """What an erasure changed, by id: kept in its record and published."""

    raw_webhooks: list[str] = []
    events: list[str] = []
    exams: list[ExamId] = []
    deliveries: list[str] = []
    itep_orders: list[str] = []

    def counts(self) -> dict[str, int]:
        return {table: len(getattr(self, table)) for table in TABLES}


_touched = msgspec.json.Decoder(Touched)
_json = msgspec.json.Encoder()


class Erasures:
    def __init__(
        self,
        settings: RetentionSettings,
        pool: asyncpg.Pool,
        results: AbstractExchange,
        *,
        publish_timeout: float = PUBLISH_TIMEOUT.default,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._results = results
        self._publish_timeout = publish_timeout

    async def run(self, stopping: asyncio.Event) -> None:
        """Runs queued erasures, one at a time, until `stopping`."""
        while not stopping.is_set():
            try:
                while not stopping.is_set() and await self.work_once():
                    pass
            except TRANSIENT as error:
                log.warning("erasure interrupted, trying again later", error=repr(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.erasure_poll):
                    await stopping.wait()

    async def work_once(self) -> bool:
        """Runs one queued erasure and publishes what is completed; False if there was nothing."""
        s = self._settings
        row = await self._pool.fetchrow(_CLAIM, s.erasure_lease, s.erasure_keep_scores)
        if row is not None:
            await self._erase(row)
        published = await self._publish_completed()
        return row is not None or published > 0

    async def _erase(self, row: asyncpg.Record) -> None:
        erasure_id: str = row["id"]
        logs.bind(erasure_id=erasure_id, subject_kind=row["subject_kind"])
        try:
            subject = Subject(row["subject_kind"], row["subject"], row["vendor"])
            touched = _touched.decode(row["touched"])
            found = await self._find(subject)
            await self._tombstone(erasure_id, subject, found, touched)
            counts = touched.counts()
            async with self._pool.acquire() as conn:
                await conn.execute(
                    _COMPLETE, erasure_id, _json.encode(counts).decode(), _json.encode(touched).decode()
                )
            ERASURES.inc()
            log.info("erasure completed", vendor=subject.vendor, **counts)
        finally:
            logs.unbind("erasure_id", "subject_kind")

    async def _find(self, subject: Subject) -> Touched:
        found = Touched()
        args = (subject.kind, subject.vendor, subject.value)
        async with self._pool.acquire() as conn:
            events = await conn.fetch(_EVENTS, *args)
            exams = {(r["vendor"], r["exam_key"]) for r in await conn.fetch(_EXAMS, *args)}
        found.events = [r["id"] for r in events]
        exams.update((r["vendor"], r["exam_key"]) for r in events if r["exam_key"] is not None)
        found.exams = [ExamId(v, k) for v, k in sorted(exams)]
        raws = {r["webhook_id"] for r in events}
        raws.update(await self._scan_raw(subject, exclude=raws))
        found.raw_webhooks = sorted(raws)
        return found

    async def _scan_raw(self, subject: Subject, *, exclude: set[str]) -> set[str]:
        """Every other raw body that concerns the subject, a page of the table at a time."""
        forms = needles(subject.value)
        hits: set[str] = set()
        last: str | None = None
        page = max(self._settings.batch, 100) * 4
        while True:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(_RAW_PAGE, last, subject.vendor, page, forms)
            for r in rows:
                if r["body"] is None or r["id"] in exclude or not r["body"]:
                    continue
                if body_concerns(
                    subject, r["vendor"], r["content_type"], bytes(r["body"]), r["vendor_event"]
                ):
                    hits.add(r["id"])
            if len(rows) < page:
                return hits
            last = rows[-1]["id"]

    async def _tombstone(self, erasure_id: str, subject: Subject, found: Touched, touched: Touched) -> None:
        tag = f"erasure:{erasure_id}"
        keep = self._settings.erasure_keep_scores
        n = self._settings.batch

        async def step(table: str, write: Any) -> None:
            async with self._pool.acquire() as conn, conn.transaction():
                changed = await write(conn)
                getattr(touched, table).extend(changed)
                ERASED.labels(table).inc(len(changed))
                await conn.execute(
                    _PROGRESS,
                    erasure_id,
                    _json.encode(touched.counts()).decode(),
                    _json.encode(touched).decode(),
                    self._settings.erasure_lease,
                )

        for i in range(0, len(found.raw_webhooks), n):
            ids = found.raw_webhooks[i : i + n]
            await step("raw_webhooks", lambda c, ids=ids: _ids(c, _ERASE_RAW, ids, tag))
        for i in range(0, len(found.events), n):
            ids = found.events[i : i + n]
            # Deliveries first: a job retaken after a crash finds its events only while they still name
            # the candidate, so the other order could leave a pending delivery sending the old body.
            await step("deliveries", lambda c, ids=ids: _ids(c, _ERASE_DELIVERIES, ids))
            await step("events", lambda c, ids=ids: _ids(c, _ERASE_EVENTS, ids, tag, keep))
        for i in range(0, len(found.exams), n):
            keys = found.exams[i : i + n]
            await step("exams", lambda c, keys=keys: _exams(c, keys, keep))
        if subject.vendor in (None, "itep"):
            await step("itep_orders", lambda c: erase_orders(c, subject))

    async def _publish_completed(self) -> int:
        published = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(_UNPUBLISHED):
                touched = _touched.decode(row["touched"])
                event = ErasureCompleted(
                    id=row["id"],
                    erasure_id=row["id"],
                    subject_kind=row["subject_kind"],
                    vendor=row["vendor"],
                    requested_at=row["requested_at"],
                    completed_at=row["completed_at"],
                    event_ids=touched.events,
                    webhook_ids=touched.raw_webhooks,
                    exams=touched.exams,
                    order_ids=touched.itep_orders,
                    scores_kept=row["keep_scores"],
                )
                await self._results.publish(
                    persistent_message(
                        encode_erasure(event), message_id=event.id, content_type="application/json"
                    ),
                    routing_key=ERASURE_COMPLETED_KEY,
                    timeout=self._publish_timeout,
                )
                await conn.execute("UPDATE erasures SET published_at = now() WHERE id = $1::uuid", row["id"])
                published += 1
        return published


async def _ids(conn: DbConn, sql: str, ids: list[str], *args: object) -> list[str]:
    return [r[0] for r in await conn.fetch(sql, ids, *args)]


async def _exams(conn: DbConn, keys: list[ExamId], keep: bool) -> list[ExamId]:
    rows = await conn.fetch(_ERASE_EXAMS, [k.vendor for k in keys], [k.exam_key for k in keys], keep)
    return [ExamId(r["vendor"], r["exam_key"]) for r in rows]


# What an iTEP order holds about its candidate: the order as the caller sent it (registration: names,
# birth date, email...), iTEP's answers (which may echo them) and the problems found in it (which
# quote values). The id, reference, product code, status, test id and times stay: the audit trail.
_ERASE_ORDERS = """
UPDATE itep_orders
SET request = '{{}}'::jsonb, response_body = NULL, response = NULL, problems = '{{}}', last_error = NULL,
    updated_at = now()
WHERE {where} AND request <> '{{}}'::jsonb
RETURNING id::text
"""
_ERASE_ORDER_HISTORY = "UPDATE itep_order_history SET detail = NULL WHERE order_id = ANY($1::uuid[])"


async def erase_orders(conn: DbConn, subject: Subject) -> list[str]:
    if subject.kind == "candidate_id":
        return []  # an order has no vendor candidate id: iTEP's results name it by OID
    if subject.kind == "external_id":
        where, args = "id::text = $1", [subject.value.strip()]
    else:
        contains = " OR ".join(
            f"strpos(lower({column}::text), n.s) > 0" for column in ("request", "response_body", "response")
        )
        where = f"EXISTS (SELECT 1 FROM unnest($1::text[]) AS n(s) WHERE {contains})"
        args = [needles(subject.value)]  # type: ignore[list-item]
    ids = [r[0] for r in await conn.fetch(_ERASE_ORDERS.format(where=where), *args)]
    if ids:
        await conn.execute(_ERASE_ORDER_HISTORY, ids)
    return ids
