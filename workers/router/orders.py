"""Tying results to the orders placed through resultbus, inside the router's batch transaction: the
I/O around the pure tie of the vendor's spec (`VendorSpec.orders`; iTEP's is common/itep/tie.py,
which says what ties a result to an order).

Called before the events are encoded, after the exam state is planned: the batch's exam rows are
locked, so two routers never tie events of one exam at once; the orders are locked in id order.
"""

from collections.abc import Mapping, Sequence

from common.db import DbConn
from common.itep.orders import add_history
from common.itep.tie import Order
from schemas.event import ResultEvent
from vendors import SPECS
from workers.router.state import ExamKey

_LOCK_ORDERS = """
SELECT id::text, reference, status, test_id FROM itep_orders
WHERE (id = ANY($1::uuid[]) OR test_id = ANY($2::text[])) AND status <> 'rejected'
ORDER BY id
FOR UPDATE
"""

_UPDATE_ORDERS = """
UPDATE itep_orders SET status = x.s, test_id = x.t, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(i, s, t)
WHERE itep_orders.id = x.i
"""


async def tie_to_orders(
    conn: DbConn, events: list[ResultEvent], final: Mapping[ExamKey, ResultEvent]
) -> list[ResultEvent]:
    """`events` with `order` set on those that belong to an order; the orders updated to match.
    `final`: the event each exam now stands at."""
    at_exam = {e.id for e in final.values()}
    for vendor, spec in SPECS.items():
        if spec.orders is None:
            continue
        mine = [e for e in events if e.vendor is vendor]
        named = spec.orders.keys(mine)
        if not named.order_ids and not named.test_ids:
            continue
        rows = await conn.fetch(_LOCK_ORDERS, sorted(named.order_ids), sorted(named.test_ids))
        if not rows:
            continue
        tied = spec.orders.tie(mine, at_exam, {row["id"]: Order(**dict(row)) for row in rows})
        by_id = {e.id: e for e in tied.events}
        events = [by_id.get(e.id, e) for e in events]
        if tied.touched:
            await _update_orders(conn, tied.touched)
        await add_history(conn, tied.changes)
    return events


async def _update_orders(conn: DbConn, orders: Sequence[Order]) -> None:
    await conn.execute(
        _UPDATE_ORDERS,
        [o.id for o in orders],
        [o.status for o in orders],
        [o.test_id for o in orders],
    )
