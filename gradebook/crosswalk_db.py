"""The crosswalk's tables (migration 010): what `resolve` needs looked up for an event, the mappings
the admin API manages, and the holds of results waiting for a mapping.

The holds are written by the delivery worker and resumed by gradebook/delivering.py; this module gives
them the calls:

- `hold(...)` when `resolve` answers Unmapped (the reason is what the operator sees);
- a mapping stored here (`put_mapping`, `import_mappings`) releases the candidate's waiting holds
  in the same transaction;
- `resumable(...)` gives the released holds' deliveries to send again, `mark_resumed(...)` records
  that their tasks were published. A release is a row, so none is lost while no worker runs.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from common.db import DbConn
from gradebook.crosswalk import Lookup, Row, candidate_key
from schemas.event import ResultEvent
from schemas.vendor import Vendor

MappingSource = Literal["api", "csv"]


class Mapping(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    candidate: str
    student: str
    override: bool
    source: str
    note: str | None = None
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class Held(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: str
    event_id: str
    delivery_id: str | None = None
    vendor: str
    exam_key: str | None = None
    candidate: str | None = None
    reason: str
    held_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    resumed_at: datetime | None = None


class Wanted(msgspec.Struct, frozen=True, kw_only=True):
    """One mapping to store (a PUT, or a CSV line)."""

    vendor: Vendor
    candidate: str
    student: str
    override: bool = False
    note: str | None = None


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    mapping: Mapping
    change: Literal["created", "updated", "unchanged"]
    before: str | None  # the student before, when the mapping changed
    released: int  # holds released by it


_LOOKUP = """
SELECT (SELECT request->'registration'->>'trStudent_Number' FROM itep_orders WHERE id = $1::uuid) AS number,
       (SELECT product_code FROM itep_orders WHERE id = $1::uuid) AS product,
       c.student, c.override
FROM (SELECT 1) AS one
LEFT JOIN crosswalk c ON c.vendor = $2 AND c.candidate = $3
"""

_MAPPING_COLUMNS = (
    "vendor, candidate, student, override, source, note, created_by, created_at, updated_by, updated_at"
)

_BEFORE = "SELECT student FROM crosswalk WHERE vendor = $1 AND candidate = $2 FOR UPDATE"

_UPSERT = f"""
INSERT INTO crosswalk (vendor, candidate, student, override, source, note, created_by, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (vendor, candidate) DO UPDATE
    SET student = EXCLUDED.student, override = EXCLUDED.override, source = EXCLUDED.source,
        note = EXCLUDED.note, updated_by = EXCLUDED.updated_by, updated_at = now()
    WHERE (crosswalk.student, crosswalk.override, crosswalk.note)
          IS DISTINCT FROM (EXCLUDED.student, EXCLUDED.override, EXCLUDED.note)
RETURNING {_MAPPING_COLUMNS}
"""

_GET = f"SELECT {_MAPPING_COLUMNS} FROM crosswalk WHERE vendor = $1 AND candidate = $2"

_CHANGE = """
INSERT INTO crosswalk_changes (vendor, candidate, before, after, override, source, changed_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

_DELETE = "DELETE FROM crosswalk WHERE vendor = $1 AND candidate = $2 RETURNING student, override"

_HELD_COLUMNS = """subscription_id::text, event_id::text, delivery_id::text, vendor, exam_key, candidate,
reason, held_at, released_at, released_by, resumed_at"""

_HOLD = """
INSERT INTO gradebook_holds (subscription_id, event_id, delivery_id, vendor, exam_key, candidate, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (subscription_id, event_id) DO UPDATE
    SET delivery_id = EXCLUDED.delivery_id, candidate = EXCLUDED.candidate, reason = EXCLUDED.reason,
        held_at = now(), released_at = NULL, released_by = NULL, resumed_at = NULL
"""

# One candidate's mapping and its holds change one at a time: a mapping stored while a result is being
# held either comes first (the hold sees it) or releases the hold (it waited for it).
_LOCK_CANDIDATES = """
SELECT pg_advisory_xact_lock(hashtext(current_schema() || ' crosswalk'), hashtext(k))
FROM unnest($1::text[]) AS k
"""

_CURRENT = "SELECT student, override FROM crosswalk WHERE vendor = $1 AND candidate = $2"

_RELEASE = f"""
UPDATE gradebook_holds SET released_at = now(), released_by = $3
WHERE vendor = $1 AND candidate = ANY($2::text[]) AND released_at IS NULL
RETURNING {_HELD_COLUMNS}
"""

# Released holds (a mapping arrived) whose delivery is still held: their tasks are to be published
# (by a delivery worker, gradebook/delivering.py). Marked resumed only after that: one whose
# task was lost is found again.
_RESUMABLE = """
SELECT d.id::text AS delivery_id, d.subscription_id::text, d.event_id::text, d.attempts
FROM gradebook_holds h JOIN deliveries d ON d.id = h.delivery_id
WHERE h.released_at IS NOT NULL AND h.resumed_at IS NULL AND d.status = 'held'
ORDER BY h.released_at
LIMIT $1
"""

# Done with once their delivery is no longer held: resumed (its task published), or settled some other
# way. One still pending is not held yet (its attempt is being settled): the next look finds it.
_RESUMED = """
UPDATE gradebook_holds h SET resumed_at = now()
FROM deliveries d
WHERE h.released_at IS NOT NULL AND h.resumed_at IS NULL AND d.id = h.delivery_id
  AND (d.id = ANY ($1::uuid[]) OR d.status NOT IN ('held', 'pending', 'waiting'))
"""


class Resumable(msgspec.Struct, frozen=True):
    """A held delivery whose candidate was mapped: its next attempt is `attempts` + 1."""

    delivery_id: str
    subscription_id: str
    event_id: str
    attempts: int


async def lookup(conn: DbConn, event: ResultEvent) -> Lookup:
    """One round trip: the iTEP order's registration (for an event tied to an order) and the table row."""
    order_id = event.order.id if event.vendor is Vendor.ITEP and event.order is not None else None
    key = candidate_key(event)
    row = await conn.fetchrow(_LOOKUP, order_id, event.vendor.value, key)
    assert row is not None
    return Lookup(
        order_student_number=row["number"],
        order_product=row["product"],
        row=Row(student=row["student"], override=row["override"]) if row["student"] is not None else None,
    )


def _mapping(row: Any) -> Mapping:
    return Mapping(**{name: row[name] for name in Mapping.__struct_fields__})


async def put_mapping(conn: DbConn, wanted: Wanted, *, by: str, source: MappingSource) -> Stored:
    """Stores one mapping, records the change and releases the candidate's holds: one transaction."""
    async with conn.transaction():
        return await _put(conn, wanted, by=by, source=source)


async def _lock(conn: DbConn, keys: Sequence[tuple[str, str]]) -> None:
    """Inside a transaction: the (vendor, candidate) keys locked, in one order (no deadlock)."""
    await conn.execute(_LOCK_CANDIDATES, sorted({f"{v}/{c}" for v, c in keys}))


async def _put(conn: DbConn, wanted: Wanted, *, by: str, source: MappingSource) -> Stored:
    vendor = wanted.vendor.value
    await _lock(conn, [(vendor, wanted.candidate)])
    # Locked first: the history's `before` is the row as this change found it.
    before = await conn.fetchval(_BEFORE, vendor, wanted.candidate)
    existed = before is not None
    row = await conn.fetchrow(
        _UPSERT, vendor, wanted.candidate, wanted.student, wanted.override, source, wanted.note, by
    )
    if row is None:  # the same mapping again: nothing written
        current = await conn.fetchrow(_GET, vendor, wanted.candidate)
        return Stored(mapping=_mapping(current), change="unchanged", before=None, released=0)
    await conn.execute(_CHANGE, vendor, wanted.candidate, before, wanted.student, wanted.override, source, by)
    released = await release(
        conn, wanted.vendor, [wanted.candidate], by=f"crosswalk:{vendor}/{wanted.candidate}"
    )
    return Stored(
        mapping=_mapping(row),
        change="updated" if existed else "created",
        before=before if existed and before != wanted.student else None,
        released=len(released),
    )


async def import_mappings(
    conn: DbConn, wanted: Sequence[Wanted], *, by: str, dry_run: bool = False
) -> list[Stored]:
    """A whole CSV file in one transaction: every line stored, or (on any error) none. A dry run
    makes the same changes and rolls them back: its answer is what the import would do."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await _lock(conn, [(one.vendor.value, one.candidate) for one in wanted])
        stored = [await _put(conn, one, by=by, source="csv") for one in wanted]
    except BaseException:
        await transaction.rollback()
        raise
    if dry_run:
        await transaction.rollback()
    else:
        await transaction.commit()
    return stored


async def get_mapping(conn: DbConn, vendor: Vendor, candidate: str) -> Mapping | None:
    row = await conn.fetchrow(_GET, vendor.value, candidate)
    return None if row is None else _mapping(row)


async def list_mappings(
    conn: DbConn,
    *,
    vendor: Vendor | None = None,
    student: str | None = None,
    candidate: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[Mapping]:
    """Filtered, in (vendor, candidate) order; `after` is the last (vendor, candidate) of the page before."""
    rows = await conn.fetch(
        f"SELECT {_MAPPING_COLUMNS} FROM crosswalk"
        " WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR student = $2)"
        " AND ($3::text IS NULL OR candidate = $3)"
        " AND ($4::text IS NULL OR (vendor, candidate) > ($4, $5))"
        " ORDER BY vendor, candidate LIMIT $6",
        vendor.value if vendor else None,
        student,
        candidate,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_mapping(r) for r in rows]


async def delete_mapping(conn: DbConn, vendor: Vendor, candidate: str, *, by: str) -> bool:
    """Removes a mapping (results already written under it stay where they are)."""
    async with conn.transaction():
        row = await conn.fetchrow(_DELETE, vendor.value, candidate)
        if row is None:
            return False
        await conn.execute(_CHANGE, vendor.value, candidate, row["student"], None, row["override"], "api", by)
        return True


async def changes(conn: DbConn, vendor: Vendor, candidate: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "SELECT before, after, override, source, changed_by, changed_at FROM crosswalk_changes"
        " WHERE vendor = $1 AND candidate = $2 ORDER BY seq",
        vendor.value,
        candidate,
    )
    return [dict(r) for r in rows]


# -- holds ------------------------------------------------------------------------------------------


async def hold(
    conn: DbConn,
    *,
    subscription_id: str,
    event: ResultEvent,
    reason: str,
    delivery_id: str | None = None,
    seen: Row | None = None,
) -> None:
    """Inside a transaction: holds `event` for `subscription_id` (held again: the reason and time are
    the latest). `seen`: the table's row as the look-up found it; one that changed since (a mapping
    stored meanwhile) releases the hold at once."""
    candidate = candidate_key(event)
    await conn.execute(
        _HOLD,
        subscription_id,
        event.id,
        delivery_id,
        event.vendor.value,
        event.exam.key if event.exam else None,
        candidate,
        reason[:2000],
    )
    if candidate is None:
        return
    await _lock(conn, [(event.vendor.value, candidate)])
    now = await conn.fetchrow(_CURRENT, event.vendor.value, candidate)
    current = None if now is None else Row(student=now["student"], override=now["override"])
    if current != seen:
        await release(conn, event.vendor, [candidate], by=f"crosswalk:{event.vendor.value}/{candidate}")


async def release(conn: DbConn, vendor: Vendor, candidates: Sequence[str], *, by: str) -> list[Held]:
    """Releases the waiting holds of these candidates (a mapping arrived). Call inside the transaction
    that stored the mapping."""
    rows = await conn.fetch(_RELEASE, vendor.value, list(candidates), by)
    return [Held(**dict(r)) for r in rows]


async def resumable(conn: DbConn, limit: int = 200) -> list[Resumable]:
    return [Resumable(*r) for r in await conn.fetch(_RESUMABLE, limit)]


async def mark_resumed(conn: DbConn, delivery_ids: Sequence[str]) -> None:
    """After their tasks are published (and, by the way, the holds whose delivery settled otherwise)."""
    await conn.execute(_RESUMED, list(delivery_ids))


async def held(
    conn: DbConn,
    *,
    vendor: Vendor | None = None,
    candidate: str | None = None,
    subscription_id: str | None = None,
    waiting_only: bool = True,
    limit: int = 100,
) -> list[Held]:
    """Holds for the admin API and the console, newest first."""
    rows = await conn.fetch(
        f"SELECT {_HELD_COLUMNS} FROM gradebook_holds"
        " WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR candidate = $2)"
        " AND ($3::uuid IS NULL OR subscription_id = $3) AND (NOT $4 OR released_at IS NULL)"
        # Waiting: its delivery is still held (one superseded or cancelled meanwhile is not).
        " AND (NOT $4 OR delivery_id IS NULL OR EXISTS (SELECT 1 FROM deliveries d"
        " WHERE d.id = gradebook_holds.delivery_id AND d.status = 'held'))"
        " ORDER BY held_at DESC LIMIT $5",
        vendor.value if vendor else None,
        candidate,
        subscription_id,
        waiting_only,
        limit,
    )
    return [Held(**dict(r)) for r in rows]
