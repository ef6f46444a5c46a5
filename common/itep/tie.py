"""Which iTEP results answer orders placed through resultbus, and what that does to the orders: pure,
no I/O. The router reaches it through iTEP's spec (`vendors/itep.py` SPEC.orders) and does the I/O
around it (workers/router/orders.py: the orders locked, then updated and their history written).

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
"""

import uuid
from collections.abc import Callable, Mapping, Sequence, Set

import msgspec
import structlog

from common.itep.orders import Change
from schemas.event import OrderRef, ResultEvent
from schemas.itep_order import CHANGE_CONFLICT, CHANGE_RESULT, Status

log = structlog.get_logger("router")

# Statuses of an order still waiting for its test ID.
_WAITING = frozenset({Status.ORDERED, Status.SENDING, Status.RETRYING, Status.UNCONFIRMED, Status.FAILED})


class Order(msgspec.Struct):
    """An order as the tie sees it (locked by the caller); `tie` moves its status and test ID."""

    id: str
    reference: str
    status: str
    test_id: str | None


class Keys(msgspec.Struct, frozen=True):
    """What a batch's results may name: order ids (their OIDs) and test IDs."""

    order_ids: frozenset[str]
    test_ids: frozenset[str]


class Tied(msgspec.Struct, frozen=True):
    """The events, those of an order carrying it; the history rows to write; the orders that moved."""

    events: list[ResultEvent]
    changes: list[Change]
    touched: list[Order]


class OrderTie(msgspec.Struct, frozen=True):
    """What a vendor's spec holds when its results may answer orders placed through resultbus."""

    keys: Callable[[Sequence[ResultEvent]], Keys]
    tie: Callable[[Sequence[ResultEvent], Set[str], Mapping[str, Order]], Tied]


def order_id(oid: str | None) -> str | None:
    """The order id an OID names, if it is one of ours at all (a UUID)."""
    if not oid:
        return None
    try:
        return str(uuid.UUID(oid))
    except ValueError:
        return None  # an OID of another system's, not one of our orders


def _oid(event: ResultEvent) -> str | None:
    return event.candidate.external_id if event.candidate else None


def keys(events: Sequence[ResultEvent]) -> Keys:
    """The order ids and test IDs `events` may name: the orders to lock before `tie`."""
    return Keys(
        order_ids=frozenset(oid for e in events if (oid := order_id(_oid(e)))),
        test_ids=frozenset(e.exam.test_id for e in events if e.exam and e.exam.test_id),
    )


def tie(events: Sequence[ResultEvent], at_exam: Set[str], orders: Mapping[str, Order]) -> Tied:
    """`events` (one vendor's, in batch order) with `order` set on those that belong to one of
    `orders` (by id); `at_exam`: the ids of the events each exam now stands at. The orders in
    `touched` have their new status and test ID."""
    tied: list[ResultEvent] = []
    changes: list[Change] = []
    touched: dict[str, Order] = {}
    for event in events:
        event, more, order = _tie_one(event, event.id in at_exam, orders)
        tied.append(event)
        changes.extend(more)
        if order is not None:
            touched[order.id] = order
    return Tied(tied, changes, list(touched.values()))


def _tie_one(
    event: ResultEvent, at_exam: bool, orders: Mapping[str, Order]
) -> tuple[ResultEvent, list[Change], Order | None]:
    """One event: as it goes on, its history rows, and the order it moves (if any)."""
    oid_text = _oid(event)
    oid = order_id(oid_text)
    test_id = event.exam.test_id if event.exam else None
    order = orders.get(oid) if oid else None
    # Orders holding this test ID (more than one only when it was handed out twice).
    holders = [o for o in orders.values() if test_id and o.test_id == test_id]
    if order is None and not holders:
        return event, [], None
    others = [o for o in holders if o is not order]
    if others and (order is not None or oid_text or len(others) > 1):
        carried = _carrying(event, order) if order is not None else event
        return carried, _conflicts(event, order, others, oid_text, test_id), None
    how = None
    if order is None:
        # No OID at all: the test ID is the only tie there is, and the history says so.
        [order] = holders
        how = f"tied by its test ID {test_id} alone: the result carries no OID"
    changes: list[Change] = []
    if order.test_id is None and test_id:
        changes.extend(_learnt(order, event, test_id))
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
    elif at_exam and event.status is not None and event.status.value != order.status:
        order.status = event.status.value
        changes.append(
            Change(order_id=order.id, change=order.status, status=order.status, event_id=event.id, detail=how)
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
    return _carrying(event, order), changes, order


def _learnt(order: Order, event: ResultEvent, test_id: str) -> list[Change]:
    """An order sent without a usable answer (a timeout, say), and here is iTEP naming its test ID."""
    order.test_id = test_id
    if order.status not in _WAITING:
        return []
    order.status = Status.TEST_ID_ASSIGNED
    detail = f"test ID {test_id} learnt from iTEP's results webhook"
    return [
        Change(order_id=order.id, change=order.status, status=order.status, event_id=event.id, detail=detail)
    ]


def _carrying(event: ResultEvent, order: Order) -> ResultEvent:
    return msgspec.structs.replace(event, order=OrderRef(id=order.id, reference=order.reference))


def _conflicts(
    event: ResultEvent, order: Order | None, others: Sequence[Order], oid: str | None, test_id: str | None
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


def _conflict(order: Order, event: ResultEvent, detail: str) -> Change:
    return Change(
        order_id=order.id, change=CHANGE_CONFLICT, status=order.status, event_id=event.id, detail=detail
    )


# iTEP's spec holds this (vendors/itep.py); a vendor whose results never answer orders holds None.
ORDER_TIE = OrderTie(keys=keys, tie=tie)
