"""An exam's state machine: does an incoming event move the exam's current state?

Statuses only move forward, so a late or duplicated event (a Finished arriving after Completed) is
kept in the history but not applied. A reset and an invalidation always apply: they are how an exam
legitimately goes back. Where both events carry the vendor's timestamp, the older one never wins;
where the vendor sends none (iTEP), arrival order decides.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

from schemas.event import ResultEvent, Status

# Forward order, following iTEP's own list of exam states. A reset starts the exam over.
RANK: dict[Status, int] = {
    Status.RESET: 0,
    Status.STARTED: 10,
    Status.FINISHED: 20,
    Status.IN_REVIEW: 30,
    Status.TECHNICAL_DIFFICULTY: 35,
    Status.COMPLETED: 40,
    Status.RELEASED: 50,
    Status.INVALIDATED: 60,
    Status.DISABLED: 70,
}

ALWAYS_APPLY = frozenset({Status.RESET, Status.INVALIDATED})


class ExamState(msgspec.Struct, frozen=True):
    status: Status
    occurred_at: datetime | None


class Position(msgspec.Struct, frozen=True):
    """Where an exam stands after an event: `seq` counts every event recorded for it (the order its
    events are delivered in), `version` the events that moved its state, `state` its status then."""

    seq: int = 0
    version: int = 0
    state: Status | None = None


def applies(current: ExamState | None, status: Status, occurred_at: datetime | None) -> bool:
    if current is None:
        return True
    if occurred_at is not None and current.occurred_at is not None and occurred_at < current.occurred_at:
        return False
    if status in ALWAYS_APPLY:
        return True
    # Equal rank applies: the same status again with newer data (a re-graded Completed) updates it.
    return RANK[status] >= RANK[current.status]


ExamKey = tuple[str, str]  # (vendor, exam key)


class Stored(msgspec.Struct, frozen=True):
    """An exam as stored: its current state (None: no status yet) and position."""

    state: ExamState | None = None
    position: Position = Position()


class Plan(msgspec.Struct, frozen=True):
    """What a batch of new events does to the exams it touches."""

    applied: frozenset[str]  # ids of the events that move their exam's state
    final: dict[ExamKey, ResultEvent]  # each exam's new current event, where one moved it
    positions: dict[str, Position]  # each event's exam position after it, by event id
    exams: dict[ExamKey, Position]  # each touched exam's position after the batch


def plan(current: Mapping[ExamKey, Stored], events: Sequence[ResultEvent]) -> Plan:
    """Runs each exam's new events through `applies`, oldest first, numbering them as they go.

    Oldest by the vendor's time where every event has one; otherwise (iTEP) in the order given,
    which is arrival order. Events without a status (vendor events) take their place in the order and
    move nothing."""
    by_exam: dict[ExamKey, list[ResultEvent]] = defaultdict(list)
    for event in events:
        if event.exam is not None:
            by_exam[(event.vendor.value, event.exam.key)].append(event)
    applied: set[str] = set()
    final: dict[ExamKey, ResultEvent] = {}
    positions: dict[str, Position] = {}
    exams: dict[ExamKey, Position] = {}
    for key, exam_events in by_exam.items():
        stored = current.get(key, Stored())
        state, at = stored.state, stored.position
        if all(e.occurred_at is not None for e in exam_events):
            exam_events.sort(key=lambda e: e.occurred_at or datetime.min)
        for event in exam_events:
            version = at.version
            if event.status is not None and applies(state, event.status, event.occurred_at):
                state = ExamState(event.status, event.occurred_at)
                applied.add(event.id)
                final[key] = event
                version += 1
            at = Position(at.seq + 1, version, None if state is None else state.status)
            positions[event.id] = at
        exams[key] = at
    return Plan(frozenset(applied), final, positions, exams)


def exam_keys(events: Sequence[ResultEvent]) -> list[ExamKey]:
    """The exams these events are about, in lock order."""
    return sorted({(e.vendor.value, e.exam.key) for e in events if e.exam is not None})
