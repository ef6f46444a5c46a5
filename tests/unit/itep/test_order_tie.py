"""Which iTEP results answer which orders, without I/O (common/itep/tie.py): tied by OID, by test ID
alone, a test ID learnt from a result, the order following its exam, and every conflict a result can
make between orders. The router's database side of it: tests/integration/itep/test_itep_orders.py."""

import uuid
from datetime import UTC, datetime

from common.itep.tie import ORDER_TIE, Keys, Order, keys, order_id, tie
from schemas.event import Candidate, ExamRef, OrderRef, ResultEvent, Status
from schemas.itep_order import CHANGE_CONFLICT, CHANGE_RESULT
from schemas.itep_order import Status as OrderStatus
from schemas.vendor import Vendor
from vendors import SPECS


def result(
    oid: str | None = None, test_id: str | None = "TID-1", status: Status = Status.COMPLETED
) -> ResultEvent:
    return ResultEvent(
        id=str(uuid.uuid4()),
        type=status.value,
        vendor=Vendor.ITEP,
        source="itep-acme",
        webhook_id=str(uuid.uuid4()),
        vendor_event="Complete",
        received_at=datetime.now(UTC),
        status=status,
        exam=ExamRef(key=f"itep:{test_id}", test_id=test_id),
        candidate=Candidate(external_id=oid) if oid is not None else None,
    )


def order(status: str = OrderStatus.TEST_ID_ASSIGNED, test_id: str | None = "TID-1") -> Order:
    return Order(
        id=str(uuid.uuid4()), reference=f"crm-{uuid.uuid4().hex[:6]}", status=status, test_id=test_id
    )


def by_id(*orders: Order) -> dict[str, Order]:
    return {o.id: o for o in orders}


def test_itep_reaches_the_tie_through_its_spec_and_no_other_vendor_has_one() -> None:
    assert SPECS[Vendor.ITEP].orders is ORDER_TIE
    assert all(spec.orders is None for vendor, spec in SPECS.items() if vendor is not Vendor.ITEP)


def test_keys_are_the_oids_that_are_order_ids_and_the_test_ids() -> None:
    mine = str(uuid.uuid4())
    events = [result(mine.upper(), "TID-1"), result("cand-4711", "TID-2"), result(None, None)]
    assert keys(events) == Keys(order_ids=frozenset({mine}), test_ids=frozenset({"TID-1", "TID-2"}))
    assert order_id("") is None and order_id("not-a-uuid") is None


def test_a_result_naming_no_order_goes_on_as_it_came() -> None:
    event = result("cand-4711", "TID-9")
    tied = tie([event], {event.id}, by_id(order(test_id="TID-1")))
    assert tied.events == [event] and tied.changes == [] and tied.touched == []


def test_the_oid_ties_and_the_order_takes_the_status_its_exam_stands_at() -> None:
    placed = order()
    event = result(placed.id, "TID-1", Status.COMPLETED)
    tied = tie([event], {event.id}, by_id(placed))
    assert tied.events[0].order == OrderRef(id=placed.id, reference=placed.reference)
    assert tied.touched == [placed] and placed.status == "completed"
    (change,) = tied.changes
    assert (change.change, change.status, change.event_id, change.publish) == (
        "completed",
        "completed",
        event.id,
        True,
    )


def test_a_result_its_exam_does_not_stand_at_is_history_only() -> None:
    placed = order()
    event = result(placed.id, "TID-1", Status.COMPLETED)
    tied = tie([event], set(), by_id(placed))
    assert tied.events[0].order is not None and placed.status == OrderStatus.TEST_ID_ASSIGNED
    (change,) = tied.changes
    assert (change.change, change.publish, change.detail) == (CHANGE_RESULT, False, None)


def test_a_result_without_an_oid_ties_by_its_test_id_alone_and_says_so() -> None:
    placed = order(test_id="TID-7")
    event = result(None, "TID-7", Status.FINISHED)
    tied = tie([event], {event.id}, by_id(placed))
    assert tied.events[0].order is not None and placed.status == "finished"
    (change,) = tied.changes
    assert change.detail == "tied by its test ID TID-7 alone: the result carries no OID"


def test_a_waiting_order_learns_its_test_id_from_the_result() -> None:
    placed = order(status=OrderStatus.UNCONFIRMED, test_id=None)
    event = result(placed.id, "TID-3", Status.COMPLETED)
    tied = tie([event], {event.id}, by_id(placed))
    assert placed.test_id == "TID-3" and placed.status == "completed"
    assert [(c.change, c.status) for c in tied.changes] == [
        (OrderStatus.TEST_ID_ASSIGNED, OrderStatus.TEST_ID_ASSIGNED),
        ("completed", "completed"),
    ]
    assert tied.changes[0].detail == "test ID TID-3 learnt from iTEP's results webhook"


def test_a_second_test_id_for_one_order_is_a_conflict_and_the_order_stays() -> None:
    placed = order(test_id="TID-1")
    event = result(placed.id, "TID-2")
    tied = tie([event], {event.id}, by_id(placed))
    assert tied.events[0].order is not None and tied.touched == [placed]
    assert placed.status == OrderStatus.TEST_ID_ASSIGNED and placed.test_id == "TID-1"
    (change,) = tied.changes
    assert change.change == CHANGE_CONFLICT and "two test IDs for one order" in (change.detail or "")


def test_an_oid_and_a_test_id_of_different_orders_mark_both_and_move_neither() -> None:
    mine, holder = order(test_id="TID-A"), order(test_id="TID-B")
    event = result(mine.id, "TID-B")
    tied = tie([event], {event.id}, by_id(mine, holder))
    assert tied.events[0].order is not None and tied.events[0].order.id == mine.id
    assert tied.touched == []
    assert {(c.order_id, c.change) for c in tied.changes} == {
        (mine.id, CHANGE_CONFLICT),
        (holder.id, CHANGE_CONFLICT),
    }
    assert mine.status == holder.status == OrderStatus.TEST_ID_ASSIGNED


def test_an_oid_of_no_order_with_an_orders_test_id_is_not_that_orders() -> None:
    holder = order(test_id="TID-B")
    event = result(str(uuid.uuid4()), "TID-B")
    tied = tie([event], {event.id}, by_id(holder))
    assert tied.events == [event] and tied.touched == []
    (change,) = tied.changes
    assert change.order_id == holder.id and ", which names no order" in (change.detail or "")


def test_a_test_id_handed_out_twice_ties_neither_order() -> None:
    first, second = order(test_id="TID-X"), order(test_id="TID-X")
    event = result(None, "TID-X")
    tied = tie([event], {event.id}, by_id(first, second))
    assert tied.events == [event] and tied.touched == []
    assert sorted(c.order_id for c in tied.changes) == sorted([first.id, second.id])


def test_events_keep_their_order_and_each_order_is_touched_once() -> None:
    placed = order()
    stranger = result("cand-1", "TID-none")
    earlier, later = result(placed.id, "TID-1", Status.FINISHED), result(placed.id, "TID-1", Status.COMPLETED)
    tied = tie([earlier, stranger, later], {later.id}, by_id(placed))
    assert [e.id for e in tied.events] == [earlier.id, stranger.id, later.id]
    assert tied.touched == [placed] and placed.status == "completed"
    assert [c.change for c in tied.changes] == [CHANGE_RESULT, "completed"]
