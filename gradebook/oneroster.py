"""A result event as OneRoster 1.2 Gradebook records: the line item of its vendor product and the
result of its exam. Pure.

Identifiers are UUIDv5, so that every delivery of the same event (at least once) writes the same
records: a line item is named by the destination's class, the vendor and the product; a result by
its line item, the vendor and the exam key. A later event of the same exam (an invalidation after a
grade) therefore PUTs over the same result.

Products (what a line item stands for): iTEP's product code of the order the exam came from (iTEP
names none in its results, and its TestID is one candidate's), else `itep`; the test of the others
(Inspera's assessment run, Synap's test, Testpress's exam), else the vendor alone.
"""

import uuid
from datetime import UTC, date, datetime
from typing import Final
from urllib.parse import quote

from gradebook import scales
from gradebook.config import OneRosterDestination
from gradebook.crosswalk import Lookup
from gradebook.scales import Scored
from schemas.event import ResultEvent, Status
from schemas.oneroster import GUIDRef, LineItem, RecordStatus, Result, ScoreStatus
from schemas.vendor import Vendor

NAMESPACE: Final = uuid.UUID("04e76767-df5b-42e4-b43c-567d293a5143")
VENDOR_NAMES: Final = {
    Vendor.ITEP: "iTEP",
    Vendor.INSPERA: "Inspera",
    Vendor.SYNAP: "Synap",
    Vendor.TESTPRESS: "Testpress",
}
WITHDRAWN: Final = frozenset({Status.INVALIDATED, Status.RESET})


def product_of(event: ResultEvent, found: Lookup) -> str:
    if event.vendor is Vendor.ITEP:
        return found.order_product or event.vendor.value
    if event.exam is not None and event.exam.test_id:
        return event.exam.test_id
    return event.vendor.value


def line_item_sourced_id(destination: OneRosterDestination, vendor: Vendor, product: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"lineItem|{destination.class_sourced_id}|{vendor.value}|{product}"))


def result_sourced_id(line_item: str, vendor: Vendor, exam_key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"result|{line_item}|{vendor.value}|{exam_key}"))


def _ref(base: str, collection: str, sourced_id: str, kind: str) -> GUIDRef:
    return GUIDRef(href=f"{base}/{collection}/{quote(sourced_id, safe='')}", sourcedId=sourced_id, type=kind)


def event_time(event: ResultEvent) -> datetime:
    return (event.occurred_at or event.received_at).astimezone(UTC)


def line_item(event: ResultEvent, destination: OneRosterDestination, found: Lookup) -> LineItem:
    """The line item as created when missing (an existing one is never rewritten: its title and
    dates are the institution's to edit)."""
    product = product_of(event, found)
    sourced_id = line_item_sourced_id(destination, event.vendor, product)
    base, roster = destination.base_url.rstrip("/"), destination.rostering()
    title = destination.line_item_titles.get(f"{event.vendor.value}:{product}")
    if title is None:
        named = event.exam.title if event.exam is not None and event.vendor is not Vendor.ITEP else None
        title = f"{VENDOR_NAMES[event.vendor]} {named or ('' if product == event.vendor.value else product)}".strip()
    when = event_time(event)
    scale = scales.scale_for(event.vendor, destination.scales)
    low, high = scales.implied_range(scale, event.result)
    score_scale = scales.score_scale_of(scale)
    return LineItem(
        sourcedId=sourced_id,
        status=RecordStatus.ACTIVE,
        dateLastModified=when,
        title=title[:255],
        description=f"Results from {VENDOR_NAMES[event.vendor]}, written by resultbus",
        assignDate=when,
        dueDate=when,
        class_=_ref(roster, "classes", destination.class_sourced_id, "class"),
        school=_ref(roster, "orgs", destination.school_sourced_id, "org"),
        category=_ref(base, "categories", destination.category_sourced_id, "category"),
        academicSession=(
            _ref(roster, "academicSessions", destination.academic_session_sourced_id, "academicSession")
            if destination.academic_session_sourced_id
            else None
        ),
        scoreScale=_ref(base, "scoreScales", score_scale, "scoreScale") if score_scale else None,
        resultValueMin=low,
        resultValueMax=high,
        metadata={"resultbus.vendor": event.vendor.value, "resultbus.product": product},
    )


def score_date(event: ResultEvent) -> date:
    """The day the candidate was scored: iTEP's TestDate where sent, else the event's day (UTC)."""
    if event.exam is not None and event.exam.taken_on is not None:
        return event.exam.taken_on
    return event_time(event).date()


def score_status(event: ResultEvent, destination: OneRosterDestination) -> ScoreStatus | None:
    """What the result's scoreStatus is for this event; None: the event writes no result."""
    match event.status:
        case Status.COMPLETED | Status.RELEASED:
            return ScoreStatus.FULLY_GRADED
        case Status.FINISHED if destination.write_submitted:
            return ScoreStatus.SUBMITTED
        case Status.INVALIDATED | Status.RESET:
            return ScoreStatus(destination.withdrawn_status)
    return None


def comment(event: ResultEvent, status: ScoreStatus) -> str | None:
    vendor = VENDOR_NAMES[event.vendor]
    parts = []
    if event.status in WITHDRAWN:
        what = "invalidated" if event.status is Status.INVALIDATED else "reset (to be taken again)"
        parts.append(
            f"{vendor} {what} this exam on {event_time(event).date().isoformat()}; the earlier score no longer stands."
        )
    elif status is ScoreStatus.SUBMITTED:
        parts.append(f"Submitted to {vendor}; not graded yet.")
    report = event.result.report_url if event.result is not None else None
    if report and event.status not in WITHDRAWN:
        parts.append(f"{vendor} score report: {report}")
    return " ".join(parts)[:2000] or None


def result(
    event: ResultEvent,
    destination: OneRosterDestination,
    found: Lookup,
    student: str,
    status: ScoreStatus,
    scored: Scored | None,
) -> Result:
    """The result record. `scored` is None for a status without a score (submitted, withdrawn)."""
    assert event.exam is not None, "a result event names its exam"
    item = line_item_sourced_id(destination, event.vendor, product_of(event, found))
    base, roster = destination.base_url.rstrip("/"), destination.rostering()
    score_scale = scales.score_scale_of(scales.scale_for(event.vendor, destination.scales))
    return Result(
        sourcedId=result_sourced_id(item, event.vendor, event.exam.key),
        status=RecordStatus.ACTIVE,
        dateLastModified=event_time(event),
        lineItem=_ref(base, "lineItems", item, "lineItem"),
        student=_ref(roster, "users", student, "user"),
        class_=_ref(roster, "classes", destination.class_sourced_id, "class"),
        scoreScale=_ref(base, "scoreScales", score_scale, "scoreScale") if score_scale else None,
        scoreStatus=status,
        score=scored.score if scored is not None else None,
        textScore=scored.text_score if scored is not None else None,
        scoreDate=score_date(event),
        comment=comment(event, status),
        metadata={
            "resultbus.eventId": event.id,
            "resultbus.vendor": event.vendor.value,
            "resultbus.examKey": event.exam.key,
            "resultbus.status": event.type,
        },
    )
