"""An exam's state machine: does an incoming event move the exam's current state?

Statuses only move forward, so a late or duplicated event (a Finished arriving after Completed) is
kept in the history but not applied. A reset and an invalidation always apply: they are how an exam
legitimately goes back. Where both events carry the vendor's timestamp, the older one never wins;
where the vendor sends none (iTEP), arrival order decides.
"""

from datetime import datetime

import msgspec

from schemas.event import Status

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


def applies(current: ExamState | None, status: Status, occurred_at: datetime | None) -> bool:
    if current is None:
        return True
    if occurred_at is not None and current.occurred_at is not None and occurred_at < current.occurred_at:
        return False
    if status in ALWAYS_APPLY:
        return True
    # Equal rank applies: the same status again with newer data (a re-graded Completed) updates it.
    return RANK[status] >= RANK[current.status]
