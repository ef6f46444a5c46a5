"""What a gradebook destination does with one result event: the one pure call between the crosswalk
look-up and the HTTP calls.

    found = await crosswalk_db.lookup(conn, event)
    match plan(event, destination, found, now=now):
        case Skip(reason):       # nothing to write for this event: record it as such, never retry
        case Unmapped(reason):   # hold it (crosswalk_db.hold) until its candidate is mapped
        case write:              # await sender.send(destination, write) -> Outcome

Skips come first: an event that would write nothing (a start, a vendor event) is never held.
"""

from datetime import datetime

import msgspec

from gradebook import caliper, oneroster, scales
from gradebook.config import CaliperDestination, Destination, OneRosterDestination
from gradebook.crosswalk import Lookup, Unmapped, resolve
from schemas.caliper import Envelope
from schemas.event import ResultEvent, Status
from schemas.oneroster import LineItem, Result


class OneRosterWrite(msgspec.Struct, frozen=True, kw_only=True):
    """PUT the line item when the provider lacks it, then PUT the result."""

    line_item: LineItem
    result: Result


class CaliperWrite(msgspec.Struct, frozen=True, kw_only=True):
    envelope: Envelope


class Skip(msgspec.Struct, frozen=True):
    reason: str


Write = OneRosterWrite | CaliperWrite


def _skip_reason(event: ResultEvent, destination: Destination) -> str | None:
    if event.exam is None:
        return f"{event.type}: the event names no exam"
    if isinstance(destination, OneRosterDestination):
        if oneroster.score_status(event, destination) is None:
            return f"{event.type}: a OneRoster gradebook receives graded, withdrawn{' and submitted' if destination.write_submitted else ''} exams only"
        return None
    if event.status not in (Status.COMPLETED, Status.RELEASED, Status.FINISHED):
        return f"{event.type}: Caliper receives graded and submitted exams only"
    return None


def plan(
    event: ResultEvent, destination: Destination, found: Lookup, *, now: datetime
) -> Write | Skip | Unmapped:
    """`found` is what crosswalk_db.lookup read for this event; `now` is the Caliper `sendTime`."""
    why = _skip_reason(event, destination)
    if why is not None:
        return Skip(why)
    scored: scales.Scored | None = None
    if event.status in (Status.COMPLETED, Status.RELEASED):
        outcome = scales.score(scales.scale_for(event.vendor, destination.scales), event.result)
        if isinstance(outcome, scales.Unscorable):
            return Skip(f"{event.type}: {outcome.reason}")
        scored = outcome
    mapped = resolve(event, destination.crosswalk, found)
    if isinstance(mapped, Unmapped):
        return mapped
    if isinstance(destination, CaliperDestination):
        if scored is None:
            return CaliperWrite(envelope=caliper.submitted(event, destination, found, mapped.student, now))
        return CaliperWrite(envelope=caliper.graded(event, destination, found, mapped.student, scored, now))
    status = oneroster.score_status(event, destination)
    assert status is not None
    return OneRosterWrite(
        line_item=oneroster.line_item(event, destination, found),
        result=oneroster.result(event, destination, found, mapped.student, status, scored),
    )
