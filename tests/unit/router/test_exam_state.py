"""The exam state machine, without I/O."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from schemas.event import ExamRef, ResultEvent, Status
from schemas.vendor import Vendor
from workers.router.state import ExamState, Position, Stored, applies, plan

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(status: Status, minutes: int | None = None) -> ExamState:
    return ExamState(status, None if minutes is None else T0 + timedelta(minutes=minutes))


def test_first_event_always_applies() -> None:
    assert applies(None, Status.COMPLETED, None)


def test_late_finished_after_completed_is_not_applied() -> None:
    assert not applies(at(Status.COMPLETED), Status.FINISHED, None)


def test_forward_moves_apply() -> None:
    assert applies(at(Status.FINISHED), Status.COMPLETED, None)
    assert applies(at(Status.COMPLETED), Status.RELEASED, None)
    assert applies(at(Status.FINISHED), Status.IN_REVIEW, None)


@pytest.mark.parametrize("forced", [Status.RESET, Status.INVALIDATED])
@pytest.mark.parametrize("current", [Status.COMPLETED, Status.RELEASED, Status.DISABLED])
def test_reset_and_invalidation_move_back(forced: Status, current: Status) -> None:
    assert applies(at(current), forced, None)


def test_after_a_reset_the_exam_starts_over() -> None:
    assert applies(at(Status.RESET), Status.FINISHED, None)


def test_invalidated_exam_is_not_completed_by_a_late_event() -> None:
    assert not applies(at(Status.INVALIDATED), Status.COMPLETED, None)


def test_vendor_time_decides_when_both_have_it() -> None:
    # An older reset does not undo a newer completion...
    assert not applies(at(Status.COMPLETED, 10), Status.RESET, T0 + timedelta(minutes=5))
    # ...but a newer one does.
    assert applies(at(Status.COMPLETED, 10), Status.RESET, T0 + timedelta(minutes=15))


def test_same_status_again_updates_unless_older() -> None:
    assert applies(at(Status.COMPLETED), Status.COMPLETED, None)
    assert applies(at(Status.COMPLETED, 1), Status.COMPLETED, T0 + timedelta(minutes=2))
    assert not applies(at(Status.COMPLETED, 2), Status.COMPLETED, T0 + timedelta(minutes=1))


def event(exam: str, status: Status, minutes: int | None, vendor: Vendor = Vendor.SYNAP) -> ResultEvent:
    return ResultEvent(
        id=f"{exam}-{status.value}-{minutes}",
        type=status.value,
        vendor=vendor,
        source="s",
        webhook_id="w",
        vendor_event=status.value,
        received_at=T0,
        occurred_at=None if minutes is None else T0 + timedelta(minutes=minutes),
        status=status,
        exam=ExamRef(key=exam),
    )


def test_plan_orders_by_vendor_time_whatever_the_arrival() -> None:
    late_first = [
        event("a", Status.RELEASED, 3),
        event("a", Status.FINISHED, 1),
        event("a", Status.COMPLETED, 2),
    ]
    result = plan({}, late_first)
    assert result.applied == {e.id for e in late_first}
    assert result.final[("synap", "a")].status is Status.RELEASED


def test_plan_without_vendor_time_keeps_arrival_order() -> None:
    arrivals = [
        event("t", Status.COMPLETED, None, Vendor.ITEP),
        event("t", Status.FINISHED, None, Vendor.ITEP),
    ]
    result = plan({}, arrivals)
    assert result.applied == {arrivals[0].id}  # the late Finished is history only
    assert result.final[("itep", "t")].status is Status.COMPLETED


def test_plan_starts_from_the_stored_state_and_vendor_events_move_nothing() -> None:
    current = {
        ("synap", "a"): Stored(at(Status.COMPLETED, 5), Position(seq=3, version=2, state=Status.COMPLETED))
    }
    vendor_event = msgspec.structs.replace(event("a", Status.FINISHED, 9), status=None, type="event.x")
    result = plan(current, [event("a", Status.FINISHED, 6), vendor_event, event("b", Status.STARTED, 1)])
    assert result.applied == {"b-started-1"}
    assert set(result.final) == {("synap", "b")}
    # Both events of `a` take their places after the stored ones, at the version it already had.
    assert result.positions["a-finished-6"] == Position(seq=4, version=2, state=Status.COMPLETED)
    assert result.positions[vendor_event.id] == Position(seq=5, version=2, state=Status.COMPLETED)
    assert result.exams[("synap", "a")] == Position(seq=5, version=2, state=Status.COMPLETED)
    assert result.positions["b-started-1"] == Position(seq=1, version=1, state=Status.STARTED)


def test_the_version_grows_with_each_event_that_moves_the_exam_and_the_state_follows() -> None:
    arrivals = [
        event("t", Status.FINISHED, None, Vendor.ITEP),
        event("t", Status.COMPLETED, None, Vendor.ITEP),
        event("t", Status.FINISHED, None, Vendor.ITEP),  # late: history only
        event("t", Status.INVALIDATED, None, Vendor.ITEP),
    ]
    arrivals[2] = msgspec.structs.replace(arrivals[2], id="late-finished")
    result = plan({}, arrivals)
    positions = [result.positions[e.id] for e in arrivals]
    assert [(p.seq, p.version, p.state) for p in positions] == [
        (1, 1, Status.FINISHED),
        (2, 2, Status.COMPLETED),
        (3, 2, Status.COMPLETED),
        (4, 3, Status.INVALIDATED),
    ]


def test_positions_follow_the_vendor_time_not_the_arrival() -> None:
    late_first = [event("a", Status.COMPLETED, 2), event("a", Status.FINISHED, 1)]
    result = plan({}, late_first)
    assert result.positions["a-finished-1"] == Position(seq=1, version=1, state=Status.FINISHED)
    assert result.positions["a-completed-2"] == Position(seq=2, version=2, state=Status.COMPLETED)
