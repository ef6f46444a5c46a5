"""The orders' tables (migration 006): placing an order, reading it, and recording its changes.

Every change of an order is a row of `itep_order_history`, written in the same transaction as the
change; a fulfillment worker publishes the rows that ask for it (`common/itep/orders.py:unpublished`)
as `resultbus.itep.order.<change>`. So a change is never published without being stored, nor stored
without being published in the end, whichever process made it (the admin API has no channel to the
results exchange, and needs none).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from common.db import DbConn
from schemas.itep_order import OrderChanged, OrderRequest, Status, order_routing_key


class ConflictingOrder(Exception):
    """The reference is taken by an order with a different body."""

    def __init__(self, order_id: str, reference: str) -> None:
        super().__init__(f"reference {reference!r} is already used by order {order_id} with a different body")
        self.order_id = order_id


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    reference: str
    product_code: str
    request: OrderRequest
    status: str
    problems: list[str]
    test_id: str | None
    attempts: int
    last_error: str | None
    response_status: int | None
    response_body: str | None
    response: Any
    created_at: datetime
    updated_at: datetime


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    change: str
    status: str
    event_id: str | None
    event_type: str | None
    detail: str | None
    at: datetime


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """A history row to write."""

    order_id: str
    change: str
    status: str
    event_id: str | None = None
    detail: str | None = None
    publish: bool = True


_json = msgspec.json.Encoder()
_request = msgspec.json.Decoder(OrderRequest)
_any = msgspec.json.Decoder()

_COLUMNS = """id::text, reference, product_code, request::text, status, problems, test_id, attempts,
last_error, response_status, response_body, response::text, created_at, updated_at"""

_INSERT = f"""
INSERT INTO itep_orders (id, reference, product_code, request, status, problems)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
ON CONFLICT (reference) DO NOTHING
RETURNING {_COLUMNS}
"""

_BY_REFERENCE = f"SELECT {_COLUMNS} FROM itep_orders WHERE reference = $1"
_BY_ID = f"SELECT {_COLUMNS} FROM itep_orders WHERE id = $1"
_LOCK = f"SELECT {_COLUMNS} FROM itep_orders WHERE id = $1 FOR UPDATE"

_HISTORY = """
SELECT h.id::text, h.change, h.status, h.event_id::text, e.type AS event_type, h.detail, h.at
FROM itep_order_history h LEFT JOIN events e ON e.id = h.event_id
WHERE h.order_id = $1 ORDER BY h.seq
"""

_ADD_HISTORY = """
INSERT INTO itep_order_history (id, order_id, change, status, event_id, detail, published_at)
SELECT i, o, c, s, e, d, CASE WHEN p THEN NULL ELSE now() END
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bool[])
     AS x(i, o, c, s, e, d, p)
"""

_UNPUBLISHED = """
SELECT h.id::text, h.change, h.status, h.event_id::text, h.detail, h.at, o.id::text AS order_id,
       o.reference, o.product_code, o.test_id, o.problems
FROM itep_order_history h JOIN itep_orders o ON o.id = h.order_id
WHERE h.published_at IS NULL
ORDER BY h.seq
LIMIT $1
FOR UPDATE OF h SKIP LOCKED
"""

_MARK_PUBLISHED = "UPDATE itep_order_history SET published_at = now() WHERE id = ANY($1::uuid[])"


def _order(row: Any) -> OrderRow:
    response = row["response"]
    return OrderRow(
        id=row["id"],
        reference=row["reference"],
        product_code=row["product_code"],
        request=_request.decode(row["request"]),
        status=row["status"],
        problems=list(row["problems"]),
        test_id=row["test_id"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        response_status=row["response_status"],
        response_body=row["response_body"],
        response=None if response is None else _any.decode(response),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_order(conn: DbConn, request: OrderRequest, problems: Sequence[str]) -> tuple[OrderRow, bool]:
    """Stores the order (rejected when it has problems) with its first history row; returns it and
    whether it is new. The same reference with the same body is the order already stored."""
    status = Status.REJECTED if problems else Status.ORDERED
    async with conn.transaction():
        row = await conn.fetchrow(
            _INSERT,
            str(uuid.uuid4()),
            request.reference,
            request.product_code,
            _json.encode(request).decode(),
            status,
            list(problems),
        )
        if row is None:
            existing = await conn.fetchrow(_BY_REFERENCE, request.reference)
            assert existing is not None  # references are never deleted
            order = _order(existing)
            if order.request != request:
                raise ConflictingOrder(order.id, request.reference)
            return order, False
        order = _order(row)
        detail = "; ".join(problems) if problems else None
        await add_history(conn, [Change(order_id=order.id, change=status, status=status, detail=detail)])
        return order, True


async def get_order(conn: DbConn, order_id: str) -> OrderRow | None:
    row = await conn.fetchrow(_BY_ID, order_id)
    return None if row is None else _order(row)


async def find_order(conn: DbConn, reference: str) -> OrderRow | None:
    row = await conn.fetchrow(_BY_REFERENCE, reference)
    return None if row is None else _order(row)


async def lock_order(conn: DbConn, order_id: str) -> OrderRow | None:
    """Inside a transaction: the order, locked until it ends."""
    row = await conn.fetchrow(_LOCK, order_id)
    return None if row is None else _order(row)


async def history(conn: DbConn, order_id: str) -> list[HistoryRow]:
    return [HistoryRow(**dict(row)) for row in await conn.fetch(_HISTORY, order_id)]


async def add_history(conn: DbConn, changes: Sequence[Change]) -> None:
    if not changes:
        return
    await conn.execute(
        _ADD_HISTORY,
        [str(uuid.uuid4()) for _ in changes],
        [c.order_id for c in changes],
        [c.change for c in changes],
        [c.status for c in changes],
        [c.event_id for c in changes],
        [c.detail[:2000] if c.detail else None for c in changes],
        [c.publish for c in changes],
    )


async def update_order(conn: DbConn, order_id: str, **fields: Any) -> None:
    """Sets the given columns and updated_at. Column names come from this package's callers, never
    from input; `response` is stored as JSON."""
    names = sorted(fields)
    assignments = ", ".join(
        f"{name} = ${i + 2}{'::jsonb' if name == 'response' else ''}" for i, name in enumerate(names)
    )
    values = [
        _json.encode(fields[n]).decode() if n == "response" and fields[n] is not None else fields[n]
        for n in names
    ]
    await conn.execute(
        f"UPDATE itep_orders SET {assignments}, updated_at = now() WHERE id = $1", order_id, *values
    )


class Unpublished(msgspec.Struct, frozen=True):
    id: str
    routing_key: str
    body: bytes


async def unpublished(conn: DbConn, limit: int) -> list[Unpublished]:
    """Inside a transaction: history rows still to publish, locked (other workers skip them)."""
    out = []
    for row in await conn.fetch(_UNPUBLISHED, limit):
        event = OrderChanged(
            id=row["id"],
            type=f"itep.order.{row['change']}",
            change=row["change"],
            order_id=row["order_id"],
            reference=row["reference"],
            product_code=row["product_code"],
            status=row["status"],
            test_id=row["test_id"],
            problems=list(row["problems"]),
            detail=row["detail"],
            event_id=row["event_id"],
            changed_at=row["at"],
        )
        out.append(Unpublished(row["id"], order_routing_key(row["change"]), _json.encode(event)))
    return out


async def mark_published(conn: DbConn, ids: Sequence[str]) -> None:
    await conn.execute(_MARK_PUBLISHED, list(ids))
