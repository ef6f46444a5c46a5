"""What the delivery workers read and write in PostgreSQL: deliveries, their order per exam, and
their attempts.

Order per exam. A delivery of an event that names an exam (and was stored by a router, which gave it
its place, `exam_seq`) goes only when nothing earlier of that exam is unsettled for its
subscription: no earlier delivery waiting or pending, and, for `delivery_order = 'all'`, no earlier
event of the exam still to be fanned out. Otherwise it is created `waiting`, with no task, and what
settles the delivery before it (or fans out the event before it) releases it: the worker then
publishes its task. For `'latest'`, a newer event supersedes what of the exam is not being attempted,
instead of waiting behind it. Those two decisions, creation and settlement, are made under a lock per
exam by the functions of migrations 013 and 016 (`deliveries_create`, `deliveries_settle`): one
round trip for many events or deliveries at once, every statement after the lock reading what was
committed before it.

An attempt starts with a claim (`claimed_at`): a second copy of its task finds the claim and does
nothing; a copy that the broker delivered again (the worker holding it stopped) takes it over. Claims
need no lock: one row each, decided by the row lock.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from common.db import DbConn
from schemas.event import EventHead

# The claims of many tasks at once, and what each needs: the delivery's state, its target and the
# event's stored body (only when claimed). Each row names its delivery; none: the delivery is gone.
_CLAIM = """
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::bool[]) AS r(id, attempt, takeover)
), claimed AS (
    UPDATE deliveries d SET claimed_at = clock_timestamp(), claimed_by = $4
    FROM r
    -- A held delivery is attempted again when a task for it comes (its candidate may be mapped now).
    WHERE d.id = r.id AND d.status IN ('pending', 'held') AND (r.attempt = 0 OR d.attempts < r.attempt)
      -- A claim is taken over by a task the broker delivered again, and only once its worker is gone (the
      -- worker's lock is free): one still posting keeps it.
      AND CASE WHEN d.claimed_at IS NULL THEN true
               WHEN r.takeover THEN pg_try_advisory_xact_lock(delivery_worker_lock_class(), d.claimed_by)
               ELSE false END
    RETURNING d.id
)
SELECT d.id::text AS delivery_id, c.id IS NOT NULL AS claimed,
       CASE WHEN c.id IS NOT NULL THEN e.payload::text END AS payload,
       -- The State, a column per field:
       d.event_id::text, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.updated_at,
       CASE WHEN d.exam_seq IS NOT NULL THEN d.vendor || '/' || d.exam_key END AS exam,
       d.claimed_at IS NOT NULL AND c.id IS NULL AS claimed_elsewhere,
       e.applied IS NOT FALSE AS applied,
       -- A `rate_limited` or `superseded` note carries the number of an attempt not made: not an outcome.
       (SELECT a.outcome FROM delivery_attempts a
        WHERE a.delivery_id = d.id AND a.outcome NOT IN ('rate_limited', 'superseded')
        ORDER BY a.attempt DESC, a.id DESC LIMIT 1) AS last_outcome,
       -- The Target, a `t_` column per field (no t_url: the subscription is gone):
       t.url AS t_url, t.status AS t_status, t.destination_kind AS t_kind,
       t.destination::text AS t_destination, t.endpoint AS t_endpoint, t.secrets AS t_secrets,
       t.endpoint_id AS t_endpoint_id, t.rate_limit AS t_rate_limit, t.rate_period::float8 AS t_rate_period
FROM r JOIN deliveries d ON d.id = r.id
LEFT JOIN claimed c ON c.id = d.id
LEFT JOIN delivery_targets t ON t.subscription_id = d.subscription_id
LEFT JOIN events e ON e.id = d.event_id
"""

_UNCLAIM = """
UPDATE deliveries SET claimed_at = NULL, claimed_by = NULL WHERE id = $1::uuid AND status IN ('pending', 'held')
"""

_CREATE = (
    "SELECT * FROM deliveries_create($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])"
)

_SETTLE = """
SELECT * FROM deliveries_settle($1::uuid[], $2::text[], $3::timestamptz[], $4::integer[],
                                $5::double precision[], $6::text[], $7::text[], $8::timestamptz[],
                                $9::boolean[], $10::text[], $11::uuid[], $12::text[])
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


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to send one delivery, as the subscription stands now."""

    url: str
    status: str
    kind: str = "webhook"  # webhook | oneroster | caliper
    destination: str | None = None  # a gradebook's configuration (JSON, gradebook/config.py)
    endpoint: str  # normalized: the key of the per-endpoint limit
    secrets: list[str]
    endpoint_id: int = 0
    rate_limit: int | None = None  # deliveries per `rate_period` seconds, across every worker
    rate_period: float | None = None


class State(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    status: str  # waiting | pending | held | succeeded | failed | cancelled | superseded
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_outcome: str | None  # of the latest attempt made: succeeded | retry | failed | gone
    updated_at: datetime
    exam: str | None  # 'vendor/exam key' when it has a place in its exam's order
    claimed_elsewhere: bool = False  # by another task, whose worker is still running
    applied: bool = True  # the event moved its exam (a late or repeated status did not)


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
    `next_attempt_at`), and `made` whether an attempt was made (and is logged with the fields). The
    fields in the order `deliveries_settle` takes them."""

    status: str
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    outcome: str = ""  # succeeded | retry | failed | gone
    next_attempt_at: datetime | None = None
    made: bool


class Settled(msgspec.Struct, frozen=True):
    attempts: int  # the delivery's attempts now; 0: the delivery is gone
    status: str


class Settlements(msgspec.Struct, frozen=True):
    """What a group of settlements did: each delivery's attempts and status (in order), the
    subscriptions it disabled, and the deliveries it released."""

    settled: list[Settled]
    disabled: set[str]
    released: list[Ready]


async def warm(conn: asyncpg.Connection) -> None:
    """Readies a new connection (db.py `warm`): the claim prepared, the functions of the fan-out and
    the settlement compiled, by calls with nothing to do (not migrated yet: left to the messages)."""
    try:
        await conn.fetch(_CLAIM, [], [], [], 0)
        await conn.fetch(_CREATE, *([[]] * 6))
        await conn.fetch(_SETTLE, *([[]] * 12))
    except asyncpg.PostgresError as error:
        structlog.get_logger("delivery").warning("database connection not warmed", error=repr(error))


async def create_deliveries(conn: DbConn, events: Sequence[tuple[EventHead, bool]]) -> list[list[Ready]]:
    """Stores the deliveries of each (event, whether an earlier fan-out of it may have stopped before
    handing out its tasks) in their place in the order of its exam, if it names one, and returns, per
    event, those that may go now (see `deliveries_create`). No two events of one call may be of one
    exam (vendor and exam key), or be the same event."""
    fanned = [(e.id, e.vendor, e.source, e.type, e.exam and e.exam.key, again) for e, again in events]
    rows = await conn.fetch(_CREATE, *_columns(fanned, 6))
    ready: dict[str, list[Ready]] = {}
    for row in rows:
        ready.setdefault(str(row["for_event"]), []).append(_ready(row))
    return [ready.get(str(e.id), []) for e, _ in events]


async def claim(conn: DbConn, tasks: Sequence[tuple[str, int, bool]], worker: int) -> list[Claim | None]:
    """Claims each (delivery id, attempt number, take over a claim), for `worker` (its lock key), in
    order: None for a delivery that is gone. A delivery is claimed when it is pending (or held), its
    attempt is not made yet and nobody holds it, or the task takes it over from a worker that is gone.
    No two items of one call may name the same delivery."""
    rows = await conn.fetch(
        _CLAIM, [t[0] for t in tasks], [t[1] for t in tasks], [t[2] for t in tasks], worker
    )
    found = {row["delivery_id"]: _claim_of(row) for row in rows}
    return [found.get(str(uuid.UUID(t[0]))) for t in tasks]


async def unclaim(conn: DbConn, delivery_id: str) -> None:
    """Releases a claim without an attempt (its task goes back to the broker)."""
    await conn.execute(_UNCLAIM, delivery_id)


async def settle(
    conn: DbConn,
    settlements: Sequence[tuple[str, Settlement]],
    exams: Sequence[str],
    disable: Sequence[tuple[str, str]] = (),
) -> Settlements:
    """Records how each (delivery id, settlement) ends, disables the (subscription id, reason) pairs,
    and releases what may go now, in one transaction under the locks of `exams` (the sorted
    'vendor/exam key' of every ordered delivery among them)."""
    settling = [(d, *msgspec.structs.astuple(s)) for d, s in settlements]
    rows = await conn.fetch(_SETTLE, *_columns(settling, 9), list(exams), *_columns(disable, 2))
    found: dict[str, Settled] = {}
    disabled: set[str] = set()
    released: list[Ready] = []
    for r in rows:
        if r["kind"] == "settled":
            found[str(r["delivery_id"])] = Settled(r["attempts"], r["status"])
        elif r["kind"] == "disabled":
            disabled.add(str(r["subscription_id"]))
        else:
            released.append(_ready(r, exam=r["exam"]))
    return Settlements(
        [found.get(str(uuid.UUID(d)), Settled(0, "gone")) for d, _ in settlements], disabled, released
    )


async def released_after(conn: DbConn, delivery_id: str) -> list[Ready]:
    return [_ready(r) for r in await conn.fetch(_RELEASED_AFTER, delivery_id)]


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as the arrays a statement unnests, one per column."""
    return [[row[i] for row in rows] for i in range(width)]


def _ready(row: asyncpg.Record, exam: str | None = None) -> Ready:
    return Ready(
        str(row["delivery_id"]), str(row["subscription_id"]), str(row["event_id"]), row["attempts"], exam
    )


def _claim_of(row: asyncpg.Record) -> Claim:
    state = State(**{field: row[field] for field in State.__struct_fields__})
    target = None
    if row["t_url"] is not None:
        target = Target(**{field: row["t_" + field] for field in Target.__struct_fields__})
    return Claim(state=state, target=target, claimed=row["claimed"], payload=row["payload"])
