"""What the delivery workers read and write in PostgreSQL: deliveries, their order per exam, and
their attempts.

Order per exam. A delivery of an event that names an exam (and was stored by a router, which gave it
its place, `exam_seq`) goes only when nothing earlier of that exam is unsettled for its
subscription: no earlier delivery waiting or pending, and, for `delivery_order = 'all'`, no earlier
event of the exam that the subscription matches still without a delivery (its fan-out has not run
yet). Otherwise it is created `waiting`, with no task, and the settlement of the delivery before it
releases it (`settle` returns it, and the worker publishes its task). For `'latest'`, a newer event
supersedes what of the exam is not yet being attempted, instead of waiting behind it.

These decisions read what other transactions wrote: creation and settlement take a lock per exam
(`_LOCK_EXAMS`) before they read, so that a delivery never waits for one whose settlement did not
see it. Claims (below) need no such lock: one row each, decided by the row lock.

An attempt starts with a claim (`claimed_at`): a second copy of its task finds the claim and does
nothing; a copy that the broker delivered again (the worker holding it stopped) takes it over.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from common.db import DbConn

# A subscription's filters, as SQL over a subscription `s` and an event's vendor, source and type. An
# empty filter matches everything; an event type filter may end in `*`.
_MATCHES = """(cardinality(s.vendors) = 0 OR {vendor} = ANY (s.vendors))
  AND (cardinality(s.sources) = 0 OR {source} = ANY (s.sources))
  AND (cardinality(s.event_types) = 0 OR EXISTS (
        SELECT 1 FROM unnest(s.event_types) AS f(t)
        WHERE f.t = {type} OR (right(f.t, 1) = '*' AND starts_with({type}, left(f.t, -1)))))"""

# Deliveries of one subscription's exam `x` (columns subscription_id, vendor, exam_key), and whether
# `x` (with its exam_seq) must wait: an earlier one unsettled, or, unless only the latest is wanted,
# an earlier matching event stored since the subscription's filters last changed still without one.
_UNSETTLED_BEFORE = """EXISTS (SELECT 1 FROM deliveries b
        WHERE b.subscription_id = x.subscription_id AND b.vendor = x.vendor AND b.exam_key = x.exam_key
          AND b.exam_seq < x.exam_seq AND b.status IN ('waiting', 'pending'))"""
_MISSING_BEFORE = f"""EXISTS (SELECT 1 FROM events p JOIN subscriptions s ON s.id = x.subscription_id
        WHERE p.vendor = x.vendor AND p.exam_key = x.exam_key AND p.exam_seq < x.exam_seq
          AND p.stored_at >= s.matching_since
          AND {_MATCHES.format(vendor="p.vendor", source="p.payload->>'source'", type="p.type")}
          AND NOT EXISTS (SELECT 1 FROM deliveries q
                          WHERE q.subscription_id = x.subscription_id AND q.event_id = p.id))"""

# One lock per exam, in one order (the keys sorted by the caller), held to the end of the transaction.
_LOCK_EXAMS = """
SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' delivery order'), hashtext(k))
FROM unnest($1::text[]) AS k
"""

# Matching, storing the deliveries and the superseded notes, in one statement. Its rows: the
# deliveries to hand tasks to now (pending, never attempted, not claimed): the ones created here and,
# when `$5` (the event was delivered before: an earlier fan-out may have stopped before it published
# their tasks), those created before.
_CREATE = f"""
WITH ev AS (
    SELECT exam_key, exam_seq FROM events WHERE id = $4::uuid AND exam_seq IS NOT NULL
), m AS (
    SELECT s.id AS subscription_id, s.delivery_order, $1::text AS vendor, ev.exam_key, ev.exam_seq
    FROM subscriptions s LEFT JOIN ev ON true
    WHERE s.status = 'active' AND {_MATCHES.format(vendor="$1", source="$2", type="$3")}
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_id = s.id AND d.event_id = $4::uuid)
), superseded AS (
    UPDATE deliveries d SET status = 'superseded', updated_at = now()
    FROM m x
    WHERE x.delivery_order = 'latest' AND d.subscription_id = x.subscription_id AND d.vendor = x.vendor
      AND d.exam_key = x.exam_key AND d.exam_seq < x.exam_seq
      AND d.status IN ('waiting', 'pending') AND d.claimed_at IS NULL
    RETURNING d.id, d.subscription_id, d.attempts
), noted AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
    SELECT id, attempts + 1, now(), 0, 'superseded by a newer event of the exam (' || $4::text || ')', 'superseded'
    FROM superseded
), decided AS (
    SELECT x.*, CASE
        WHEN x.exam_seq IS NULL THEN 'pending'
        -- A later event of the exam was handed out already (this one would arrive after it), or,
        -- when only the latest is wanted, is there at all.
        WHEN EXISTS (SELECT 1 FROM deliveries l
                     WHERE l.subscription_id = x.subscription_id AND l.vendor = x.vendor
                       AND l.exam_key = x.exam_key AND l.exam_seq > x.exam_seq
                       AND (l.status <> 'waiting' OR x.delivery_order = 'latest'))
            THEN 'superseded'
        WHEN x.delivery_order = 'latest' THEN
            CASE WHEN EXISTS (SELECT 1 FROM deliveries b
                              WHERE b.subscription_id = x.subscription_id AND b.vendor = x.vendor
                                AND b.exam_key = x.exam_key AND b.exam_seq < x.exam_seq
                                AND b.status IN ('waiting', 'pending')
                                AND b.id NOT IN (SELECT id FROM superseded))
                 THEN 'waiting' ELSE 'pending' END
        WHEN {_UNSETTLED_BEFORE} OR {_MISSING_BEFORE} THEN 'waiting'
        ELSE 'pending' END AS status
    FROM m x
), inserted AS (
    INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, vendor, exam_key, exam_seq)
    SELECT gen_random_uuid(), subscription_id, $4::uuid, $3, status, vendor, exam_key, exam_seq FROM decided
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    RETURNING id, subscription_id, status
), late AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
    SELECT id, 1, now(), 0, 'superseded: a later event of the exam was handed out before it', 'superseded'
    FROM inserted WHERE status = 'superseded'
)
SELECT id::text AS delivery_id, subscription_id::text, $4::uuid::text AS event_id, 0 AS attempts
FROM inserted WHERE status = 'pending'
UNION ALL
SELECT d.id::text, d.subscription_id::text, $4::uuid::text, 0 FROM deliveries d
WHERE $5 AND d.event_id = $4::uuid AND d.status = 'pending' AND d.attempts = 0 AND d.claimed_at IS NULL
"""

# The claims of many tasks at once, and what each needs: the delivery's state, its target and the
# event's stored body (only when claimed). Each row names its delivery; none: the delivery is gone.
_CLAIM = """
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::bool[]) AS r(id, attempt, takeover)
), claimed AS (
    UPDATE deliveries d SET claimed_at = clock_timestamp()
    FROM r
    WHERE d.id = r.id AND d.status = 'pending' AND (r.attempt = 0 OR d.attempts < r.attempt)
      AND (d.claimed_at IS NULL OR r.takeover)
    RETURNING d.id
)
SELECT d.id::text AS delivery_id, d.event_id::text, c.id IS NOT NULL AS claimed, d.status, d.attempts,
       d.next_attempt_at,
       d.last_status, d.last_error, d.updated_at,
       CASE WHEN d.exam_seq IS NOT NULL THEN d.vendor || '/' || d.exam_key END AS exam,
       -- A `rate_limited` or `superseded` note carries the number of an attempt not made: not an outcome.
       (SELECT a.outcome FROM delivery_attempts a
        WHERE a.delivery_id = d.id AND a.outcome NOT IN ('rate_limited', 'superseded')
        ORDER BY a.attempt DESC, a.id DESC LIMIT 1) AS last_outcome,
       t.url, t.status AS subscription_status, t.delivery_order, t.endpoint, t.secrets, t.endpoint_id,
       t.rate_limit, t.rate_period,
       CASE WHEN c.id IS NOT NULL THEN e.payload::text END AS payload
FROM r JOIN deliveries d ON d.id = r.id
LEFT JOIN claimed c ON c.id = d.id
LEFT JOIN delivery_targets t ON t.subscription_id = d.subscription_id
LEFT JOIN events e ON e.id = d.event_id
"""

_UNCLAIM = "UPDATE deliveries SET claimed_at = NULL WHERE id = $1::uuid AND status = 'pending'"

# Many settlements in one statement: each delivery's new state and, for an attempt made, its row in
# the log. A pending one (a retry) that a newer event of its exam is waiting behind, for a subscription
# that wants only the latest, is superseded instead, with a note.
_SETTLE = """
WITH a AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::integer[],
                         $5::double precision[], $6::text[], $7::text[], $8::timestamptz[], $9::bool[])
        AS a(id, status, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at, made)
), decided AS (
    SELECT a.*, CASE
        WHEN a.status = 'pending' AND t.delivery_order = 'latest' AND EXISTS (
            SELECT 1 FROM deliveries l WHERE l.subscription_id = d.subscription_id AND l.vendor = d.vendor
              AND l.exam_key = d.exam_key AND l.exam_seq > d.exam_seq AND l.status = 'waiting')
        THEN 'superseded' ELSE a.status END AS final
    FROM a JOIN deliveries d ON d.id = a.id LEFT JOIN subscriptions t ON t.id = d.subscription_id
), d AS (
    UPDATE deliveries SET attempts = deliveries.attempts + a.made::int, status = a.final,
                          last_status = CASE WHEN a.made THEN a.status_code ELSE last_status END,
                          last_error = CASE WHEN a.made THEN a.error ELSE last_error END,
                          next_attempt_at = CASE WHEN a.final = 'pending' THEN a.next_attempt_at END,
                          claimed_at = NULL, updated_at = now()
    FROM decided a WHERE deliveries.id = a.id
    RETURNING deliveries.id, deliveries.attempts, deliveries.status, a.made, a.attempted_at, a.status_code,
              a.latency_ms, a.error, a.outcome, a.next_attempt_at
), logged AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error,
                                   outcome, next_attempt_at)
    SELECT id, attempts, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at
    FROM d WHERE made
), noted AS (
    INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome)
    SELECT id, attempts + 1, now(), 0, 'superseded by a newer event of the exam', 'superseded'
    FROM d WHERE status = 'superseded'
)
SELECT id::text AS delivery_id, attempts, status FROM d
"""

# The deliveries that the settlements just made may now go: per exam, the first waiting one with
# nothing unsettled before it.
_RELEASE = f"""
UPDATE deliveries x SET status = 'pending', updated_at = now()
FROM (SELECT DISTINCT subscription_id, vendor, exam_key FROM deliveries
      WHERE id = ANY ($1::uuid[]) AND exam_seq IS NOT NULL) settled, subscriptions s
WHERE x.subscription_id = settled.subscription_id AND x.vendor = settled.vendor
  AND x.exam_key = settled.exam_key AND x.status = 'waiting' AND s.id = x.subscription_id
  AND NOT {_UNSETTLED_BEFORE}
  AND (s.delivery_order = 'latest' OR NOT {_MISSING_BEFORE})
RETURNING x.id::text AS delivery_id, x.subscription_id::text, x.event_id::text, x.attempts,
          x.vendor || '/' || x.exam_key AS exam
"""

# What a settled delivery released, for a task that finds its attempt recorded but may not have
# published what followed it (its worker stopped in between).
_RELEASED_AFTER = """
SELECT x.id::text AS delivery_id, x.subscription_id::text, x.event_id::text, x.attempts
FROM deliveries d JOIN deliveries x
  ON x.subscription_id = d.subscription_id AND x.vendor = d.vendor AND x.exam_key = d.exam_key
 AND x.exam_seq > d.exam_seq
WHERE d.id = $1::uuid AND x.status = 'pending' AND x.attempts = 0 AND x.claimed_at IS NULL
"""

_DISABLE = """
UPDATE subscriptions SET status = 'disabled', status_reason = $2, status_changed_at = now(),
                         matching_since = now(), updated_at = now()
WHERE id = $1::uuid AND status = 'active'
RETURNING id::text
"""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to send one delivery, as the subscription stands now."""

    url: str
    status: str
    endpoint: str  # normalized: the key of the per-endpoint limit
    secrets: list[str]
    endpoint_id: int = 0
    rate_limit: int | None = None  # deliveries per `rate_period` seconds, across every worker
    rate_period: float | None = None


class State(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    status: str  # waiting | pending | succeeded | failed | cancelled | superseded
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_outcome: str | None  # of the latest attempt made: succeeded | retry | failed | gone
    updated_at: datetime
    exam: str | None  # 'vendor/exam key' when it has a place in its exam's order


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """What a task found: the delivery's state, and, when it may make its attempt now, the target and
    the event's body as stored."""

    state: State
    target: Target | None = None  # None: its subscription is gone
    claimed: bool = False
    payload: str | None = None


class Ready(msgspec.Struct, frozen=True):
    """A delivery that may be attempted now: its task (for attempt `attempts` + 1) is to be published."""

    delivery_id: str
    subscription_id: str
    event_id: str
    attempts: int = 0
    exam: str | None = None


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """How a claimed delivery ends its turn: `status` its new status (pending: to be tried again at
    `next_attempt_at`), and `made` whether an attempt was made (and is logged with the fields)."""

    status: str
    made: bool
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    outcome: str = ""  # succeeded | retry | failed | gone
    next_attempt_at: datetime | None = None


class Settled(msgspec.Struct, frozen=True):
    attempts: int  # the delivery's attempts now; 0: the delivery is gone
    status: str


class Outcome(msgspec.Struct, frozen=True):
    """What a group of settlements did: each delivery's attempts and status (in order), the
    subscriptions it disabled, and the deliveries it released."""

    settled: list[Settled]
    disabled: set[str]
    released: list[Ready]


async def create_deliveries(
    conn: DbConn,
    vendor: str,
    source: str,
    event_type: str,
    event_id: str,
    exam: str | None,
    *,
    recovering: bool,
) -> list[Ready]:
    """Matches the event to the active subscriptions and stores a delivery for each, in its place in
    the order of `exam` ('vendor/exam key', if the event names one); returns those that may go now
    (see `_CREATE`)."""
    args = (vendor, source, event_type, event_id, recovering)
    if exam is None:
        rows = await conn.fetch(_CREATE, *args)
    else:
        async with conn.transaction():
            await conn.execute(_LOCK_EXAMS, [exam])
            rows = await conn.fetch(_CREATE, *args)
    return [
        Ready(row["delivery_id"], row["subscription_id"], row["event_id"], row["attempts"]) for row in rows
    ]


async def claim(conn: DbConn, tasks: Sequence[tuple[str, int, bool]]) -> list[Claim | None]:
    """Claims each (delivery id, attempt number, take over a claim), in order: None for a delivery
    that is gone. A delivery is claimed when it is pending, its attempt is not made yet and nobody
    holds it (or the task takes it over)."""
    rows = await conn.fetch(_CLAIM, [t[0] for t in tasks], [t[1] for t in tasks], [t[2] for t in tasks])
    found = {row["delivery_id"]: _claim_of(row) for row in rows}
    return [found.get(str(uuid.UUID(t[0]))) for t in tasks]


async def unclaim(conn: DbConn, delivery_id: str) -> None:
    """Hands a claimed delivery back without an attempt (its task goes back to the broker)."""
    await conn.execute(_UNCLAIM, delivery_id)


async def settle(
    conn: DbConn,
    settlements: Sequence[tuple[str, Settlement]],
    exams: Sequence[str],
    disable: Sequence[tuple[str, str]] = (),
) -> Outcome:
    """Records how each (delivery id, settlement) ends, disables the (subscription id, reason) pairs,
    and releases what may go now, in one transaction under the locks of `exams` (the sorted
    'vendor/exam key' of every ordered delivery among them)."""
    ids = [d for d, _ in settlements]
    disabled: set[str] = set()
    async with conn.transaction():
        if exams:
            await conn.execute(_LOCK_EXAMS, list(exams))
        rows = await conn.fetch(
            _SETTLE,
            ids,
            [s.status for _, s in settlements],
            [s.attempted_at for _, s in settlements],
            [s.status_code for _, s in settlements],
            [s.latency_ms for _, s in settlements],
            [s.error for _, s in settlements],
            [s.outcome for _, s in settlements],
            [s.next_attempt_at for _, s in settlements],
            [s.made for _, s in settlements],
        )
        for subscription_id, reason in disable:
            if (done := await conn.fetchval(_DISABLE, subscription_id, reason)) is not None:
                disabled.add(done)
        released = await conn.fetch(_RELEASE, ids) if exams else []
    found = {row["delivery_id"]: Settled(row["attempts"], row["status"]) for row in rows}
    return Outcome(
        [found.get(str(uuid.UUID(d)), Settled(0, "gone")) for d in ids],
        disabled,
        [
            Ready(r["delivery_id"], r["subscription_id"], r["event_id"], r["attempts"], r["exam"])
            for r in released
        ],
    )


async def released_after(conn: DbConn, delivery_id: str) -> list[Ready]:
    rows = await conn.fetch(_RELEASED_AFTER, delivery_id)
    return [
        Ready(row["delivery_id"], row["subscription_id"], row["event_id"], row["attempts"]) for row in rows
    ]


def _claim_of(row: asyncpg.Record) -> Claim:
    state = State(
        event_id=row["event_id"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_outcome=row["last_outcome"],
        updated_at=row["updated_at"],
        exam=row["exam"],
    )
    target = None
    if row["url"] is not None:
        target = Target(
            url=row["url"],
            status=row["subscription_status"],
            endpoint=row["endpoint"],
            secrets=list(row["secrets"]),
            endpoint_id=row["endpoint_id"],
            rate_limit=row["rate_limit"],
            rate_period=None if row["rate_period"] is None else float(row["rate_period"]),
        )
    return Claim(state=state, target=target, claimed=row["claimed"], payload=row["payload"])
