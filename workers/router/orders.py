"""Tying iTEP results to the orders placed through resultbus, inside the router's batch transaction.

An iTEP event belongs to an order when its `OID` (`candidate.external_id`) is an order id (iTEP
returns the `trExternal_ID` we registered), or, for a result that carries no OID at all, when its
`TestID` is the test ID an order was given. The event then carries the order (`ResultEvent.order`)
as stored and as published, and the order's status follows its exam: when the event is the one its
exam now stands at, the order takes its status. Each tied event is a row of the order's history; a
status change is also published (by a fulfillment worker, from the history: common/itep/orders.py).

A test ID alone never ties a result that says otherwise. When the `OID` names no order but the
`TestID` is an order's, the result is not that order's (a test ID handed out twice: a fake iTEP
restarted, or an operator's typo): it is published without an order, and the order's history gets
a `conflict` row saying so. When `OID` and `TestID` name different orders, the result is the OID's
(what we registered with iTEP), and both orders get a `conflict` row; neither moves.

Called before the events are encoded, after the exam state is planned: the batch's exam rows are
locked, so two routers never tie events of one exam at once; the orders are locked in id order.
"""

import uuid
from collections.abc import Mapping, Sequence

import msgspec
import structlog

from common.db import DbConn
from common.itep.orders import Change, add_history
from schemas.event import OrderRef, ResultEvent
from schemas.itep_order import CHANGE_CONFLICT, CHANGE_RESULT, Status
from schemas.vendor import Vendor
from workers.router.state import ExamKey

log = structlog.get_logger("router")

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


# Statuses of an order still waiting for its test ID.
_WAITING = frozenset({Status.ORDERED, Status.SENDING, Status.RETRYING, Status.UNCONFIRMED, Status.FAILED})


class _Order(msgspec.Struct):
    id: str
    reference: str
    status: str
    test_id: str | None


def _as_uuid(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None  # an OID of another system's, not one of our orders


async def tie_to_orders(
    conn: DbConn, events: list[ResultEvent], final: Mapping[ExamKey, ResultEvent]
) -> list[ResultEvent]:
    """`events` with `order` set on those that belong to an order; the orders updated to match."""
    oids = {
        oid
        for e in events
        if e.vendor is Vendor.ITEP and (oid := _as_uuid(e.candidate.external_id if e.candidate else None))
    }
    test_ids = {e.exam.test_id for e in events if e.vendor is Vendor.ITEP and e.exam and e.exam.test_id}
    if not oids and not test_ids:
        return events
    rows = await conn.fetch(_LOCK_ORDERS, sorted(oids), sorted(test_ids))
    if not rows:
        return events
    orders = {row["id"]: _Order(**dict(row)) for row in rows}
    at_exam = {id(e) for e in final.values()}  # the events each exam now stands at

    tied: list[ResultEvent] = []
    changes: list[Change] = []
    touched: dict[str, _Order] = {}
    for event in events:
        oid_text = event.candidate.external_id if event.candidate else None
        oid = _as_uuid(oid_text)
        test_id = event.exam.test_id if event.exam else None
        order = orders.get(oid) if oid else None
        # Orders holding this test ID (more than one only when it was handed out twice).
        holders = [o for o in orders.values() if test_id and o.test_id == test_id]
        if event.vendor is not Vendor.ITEP or (order is None and not holders):
            tied.append(event)
            continue
        others = [o for o in holders if o is not order]
        if others and (order is not None or oid_text or len(others) > 1):
            changes.extend(_conflicts(event, order, others, oid_text, test_id))
            tied.append(_carrying(event, order) if order is not None else event)
            continue
        how = None
        if order is None:
            # No OID at all: the test ID is the only tie there is, and the history says so.
            [order] = holders
            how = f"tied by its test ID {test_id} alone: the result carries no OID"
        tied.append(_carrying(event, order))
        touched[order.id] = order
        if order.test_id is None and test_id:
            # Sent without a usable answer (a timeout, say), and here is iTEP naming the test ID.
            order.test_id = test_id
            if order.status in _WAITING:
                order.status = Status.TEST_ID_ASSIGNED
                changes.append(
                    Change(
                        order_id=order.id,
                        change=order.status,
                        status=order.status,
                        event_id=event.id,
                        detail=f"test ID {test_id} learnt from iTEP's results webhook",
                    )
                )
        if test_id and order.test_id != test_id:
            log.warning("two test IDs for one order", order_id=order.id, test_id=order.test_id, other=test_id)
            changes.append(
                _conflict(
                    order,
                    event,
                    f"iTEP reports test ID {test_id} for this order, which has {order.test_id}:"
                    " two test IDs for one order; void one in iTEP's admin",
                )
            )
            continue
        if id(event) in at_exam and event.status is not None and event.status.value != order.status:
            order.status = event.status.value
            changes.append(
                Change(
                    order_id=order.id, change=order.status, status=order.status, event_id=event.id, detail=how
                )
            )
        else:
            changes.append(
                Change(
                    order_id=order.id,
                    change=CHANGE_RESULT,
                    status=order.status,
                    event_id=event.id,
                    detail=how,
                    publish=False,
                )
            )
    if touched:
        await _update_orders(conn, list(touched.values()))
    await add_history(conn, changes)
    return tied


def _carrying(event: ResultEvent, order: _Order) -> ResultEvent:
    return msgspec.structs.replace(event, order=OrderRef(id=order.id, reference=order.reference))


def _conflicts(
    event: ResultEvent, order: _Order | None, others: Sequence[_Order], oid: str | None, test_id: str | None
) -> list[Change]:
    """A `conflict` row on every order the result names, none of which moves: `order` (by its OID,
    the result's) and `others` (holding its test ID, not theirs)."""
    log.warning(
        "a result's OID and test ID name different orders",
        event_id=event.id,
        oid=oid,
        test_id=test_id,
        order_id=order.id if order else None,
        test_id_orders=[o.id for o in others],
    )
    named = f"OID {oid}" if oid else "no OID"
    changes = [
        _conflict(
            other,
            event,
            f"a result with {named}"
            + (f" (order {order.id})" if order else ", which names no order" if oid else "")
            + f" carries this order's test ID {test_id}: not tied to this order;"
            " a test ID given twice? check it in iTEP's admin",
        )
        for other in others
    ]
    if order is not None:
        holders = ", ".join(o.id for o in others)
        changes.append(
            _conflict(
                order,
                event,
                f"this order's result carries test ID {test_id}, which order {holders} holds:"
                " a test ID given twice? check it in iTEP's admin",
            )
        )
    return changes


def _conflict(order: _Order, event: ResultEvent, detail: str) -> Change:
    return Change(
        order_id=order.id, change=CHANGE_CONFLICT, status=order.status, event_id=event.id, detail=detail
    )


async def _update_orders(conn: DbConn, orders: Sequence[_Order]) -> None:
    await conn.execute(
        _UPDATE_ORDERS,
        [o.id for o in orders],
        [o.status for o in orders],
        [o.test_id for o in orders],
    )
