"""A result event as a Caliper 1.2 envelope. Pure.

A graded exam (completed, released) is a `GradeEvent` (`Graded`): the vendor's platform, as a
SoftwareApplication, scored the candidate's `Attempt` and generated a `Score`. A finished exam is an
`AssessmentEvent` (`Submitted`): the student submitted the `Assessment`, generating the Attempt.
Caliper has no action that withdraws a score: invalidations and resets send nothing here.

IRIs: the student is the destination's `person` template; assessments, attempts and scores are
named under the destination's `app` IRI by vendor, product and exam key; the event id is a UUIDv5 of
the resultbus event, so a redelivered event is the same Caliper event (stores deduplicate by id).
"""

import math
import uuid
from datetime import datetime
from urllib.parse import quote

from gradebook.config import CaliperDestination
from gradebook.crosswalk import Lookup
from gradebook.oneroster import NAMESPACE, VENDOR_NAMES, event_time, product_of
from gradebook.scales import Scored
from schemas.caliper import (
    CONTEXT,
    DATA_VERSION,
    Assessment,
    AssessmentEvent,
    Attempt,
    Envelope,
    GradeEvent,
    Person,
    Score,
    SoftwareApplication,
)
from schemas.event import ResultEvent


def _iri(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def event_iri(event: ResultEvent, kind: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'caliper|{kind}|{event.id}')}"


def person(destination: CaliperDestination, student: str) -> Person:
    return Person(id=destination.person.replace("{student}", quote(student, safe="")))


def vendor_app(destination: CaliperDestination, event: ResultEvent) -> SoftwareApplication:
    app = destination.app.rstrip("/")
    return SoftwareApplication(
        id=f"{app}/vendors/{_iri(event.vendor.value)}", name=VENDOR_NAMES[event.vendor]
    )


def assessment(
    destination: CaliperDestination, event: ResultEvent, found: Lookup, max_score: float | None = None
) -> Assessment:
    app = destination.app.rstrip("/")
    title = event.exam.title if event.exam is not None else None
    return Assessment(
        id=f"{app}/assessments/{_iri(event.vendor.value, product_of(event, found))}",
        name=title,
        maxScore=max_score,
    )


def iso_duration(minutes: float | None) -> str | None:
    if minutes is None or not math.isfinite(minutes) or minutes < 0:
        return None
    seconds = round(minutes * 60)
    hours, rest = divmod(seconds, 3600)
    mins, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "") + (f"{secs}S" if secs else "")
    return text if text != "PT" else "PT0S"


def attempt(
    destination: CaliperDestination, event: ResultEvent, found: Lookup, student: str, max_score: float | None
) -> Attempt:
    assert event.exam is not None, "a result event names its exam"
    app = destination.app.rstrip("/")
    when = event_time(event)
    return Attempt(
        id=f"{app}/attempts/{_iri(event.vendor.value, event.exam.key)}",
        assignee=person(destination, student),
        assignable=assessment(destination, event, found, max_score),
        count=1,
        dateCreated=when,
        endedAtTime=when,
        duration=iso_duration(event.result.duration_minutes) if event.result is not None else None,
    )


def graded(
    event: ResultEvent,
    destination: CaliperDestination,
    found: Lookup,
    student: str,
    scored: Scored,
    now: datetime,
) -> Envelope:
    grader = vendor_app(destination, event)
    tried = attempt(destination, event, found, student, scored.value_max)
    report = event.result.report_url if event.result is not None else None
    score = Score(
        id=f"{tried.id}/score",
        attempt=tried.id,
        scoreGiven=scored.score,
        maxScore=scored.value_max,
        scoredBy=grader.id,
        comment=f"{VENDOR_NAMES[event.vendor]} score report: {report}" if report else None,
        dateCreated=event_time(event),
        extensions={"textScore": scored.text_score} if scored.text_score is not None else None,
    )
    grade = GradeEvent(
        context=CONTEXT,
        id=event_iri(event, "graded"),
        profile="GradingProfile",
        actor=grader,
        action="Graded",
        object=tried,
        generated=score,
        eventTime=event_time(event),
        edApp=grader,
    )
    return Envelope(sensor=destination.sensor, sendTime=now, dataVersion=DATA_VERSION, data=[grade])


def submitted(
    event: ResultEvent, destination: CaliperDestination, found: Lookup, student: str, now: datetime
) -> Envelope:
    tried = attempt(destination, event, found, student, None)
    submission = AssessmentEvent(
        context=CONTEXT,
        id=event_iri(event, "submitted"),
        profile="AssessmentProfile",
        actor=tried.assignee,
        action="Submitted",
        object=tried.assignable,
        generated=tried,
        eventTime=event_time(event),
        edApp=vendor_app(destination, event),
    )
    return Envelope(sensor=destination.sensor, sendTime=now, dataVersion=DATA_VERSION, data=[submission])
