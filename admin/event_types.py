"""The event types a subscription can filter on (as Inspera's `GET /v1/subscription/events`).

Statuses are fixed; vendor events are open-ended (`event.<vendor's name>`, and an unknown name is
normal), so the list names those the vendors document, and the `event.*` pattern that takes them all.
"""

from typing import Final

from admin.wire import EventType
from schemas.event import VENDOR_EVENT_PREFIX, Status
from schemas.vendor import Vendor
from vendors import SPECS

_STATUS_TEXT: Final = {
    Status.STARTED: "the candidate started",
    Status.FINISHED: "submitted, awaiting grading",
    Status.IN_REVIEW: "under review",
    Status.TECHNICAL_DIFFICULTY: "the vendor reports a technical problem",
    Status.COMPLETED: "graded",
    Status.RELEASED: "results released to the candidate",
    Status.INVALIDATED: "the result was invalidated",
    Status.RESET: "the exam was reset",
    Status.DISABLED: "the exam was disabled",
}

_ALL: Final = [v.value for v in Vendor]


def event_types() -> list[EventType]:
    found = [
        EventType(type=s.value, kind="status", description=_STATUS_TEXT[s], vendors=_ALL) for s in Status
    ]
    for vendor, spec in SPECS.items():
        names = spec.documented_events
        found.extend(
            EventType(
                type=VENDOR_EVENT_PREFIX + name,
                kind="vendor_event",
                description=f"{vendor.value} event {name}",
                vendors=[vendor.value],
            )
            for name in names
        )
    found.append(
        EventType(
            type=VENDOR_EVENT_PREFIX + "*",
            kind="pattern",
            description="every vendor event that is not a status change, known or not",
            vendors=_ALL,
        )
    )
    return found
