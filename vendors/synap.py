"""Synap: one event per URL, so the event name comes from the source (only results-released bodies
name their event in `meta.eventName`)."""

import msgspec

from common.decoding import DECODE_ERRORS
from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Grade, Result, Status
from schemas.synap import SynapAttempt, SynapWebhook
from schemas.vendor import Vendor
from vendors import rules
from vendors.base import (
    Normalized,
    RejectedWebhook,
    VendorSpec,
    decode_failure,
    result_event,
)

_decoder = msgspec.json.Decoder(SynapWebhook)

STATUSES: dict[str, Status] = {
    "attempt.submitted": Status.FINISHED,
    "exam.submitted": Status.FINISHED,
    "attempt.completed": Status.COMPLETED,
    "exam.completed": Status.COMPLETED,
}


def status_of(event_name: str) -> Status | None:
    # The code of "exam results released" is not documented; any event naming a release is one.
    if "released" in event_name.lower():
        return Status.RELEASED
    return STATUSES.get(event_name)


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    try:
        sent = _decoder.decode(envelope.body)
    except DECODE_ERRORS as error:
        raise decode_failure("synap", error) from None

    name = envelope.event or sent.meta.eventName
    if not name or not name.strip():
        raise RejectedWebhook("synap: no event name (set `event` on the source: Synap sends one per URL)")
    rules.instant("synap", "meta.timestamp", sent.meta.timestamp)
    status = status_of(name)
    attempt, exam, user = sent.attempt, sent.exam, sent.user
    attempt_id = _id(attempt.id) if attempt else None
    exam_id = _id(exam.id) if exam else None
    user_id = _id(user.id) if user else None

    ids = (attempt_id or "", exam_id or "", user_id or "")
    natural_key = f"{name}|{'|'.join(ids)}|{sent.meta.timestamp.isoformat()}"

    exam_key = None
    if attempt_id is not None:
        exam_key = f"attempt:{attempt_id}"
    elif exam_id is not None and user_id is not None:
        exam_key = f"exam:{exam_id}/user:{user_id}"
    elif status is not None:
        # A status change applies to one candidate's exam; without its ids there is nothing to apply
        # it to. Events that are not status changes (`user.registered`, …) need no exam.
        raise RejectedWebhook(
            f"synap: {name} needs `attempt.id`, or `exam.id` and `user.id`, to name the exam"
        )
    exam_ref = None
    if exam_key is not None:
        exam_ref = ExamRef(
            key=exam_key,
            attempt_id=attempt_id,
            test_id=_id(sent.test.id) if sent.test else None,
            title=(exam.name if exam else None) or (sent.test.title if sent.test else None),
        )

    attributes: dict[str, str | int | float | bool | None] = {}
    if sent.portal is not None and (portal_id := _id(sent.portal.id)) is not None:
        attributes["portal_id"] = portal_id
    if exam_id is not None:
        attributes["exam_id"] = exam_id
    if attempt is not None:
        for key, value in (
            ("attempt_status", attempt.status),
            ("exam_status", attempt.examStatus),
            ("proctor_status", attempt.proctorStatus),
            (
                "marking_status",
                attempt.state.results.markingStatus if attempt.state and attempt.state.results else None,
            ),
        ):
            if value is not None:
                attributes[key] = value

    event = result_event(
        envelope,
        natural_key,
        name,
        status,
        occurred_at=sent.meta.timestamp,
        exam=exam_ref,
        candidate=_candidate(sent),
        result=_result(sent),
        attributes=attributes,
    )
    return [Normalized(natural_key, event)]


def _id(value: str | None) -> str | None:
    """An id sent empty is no id: `{}` and `{"id": ""}` are both an object without identity. A real
    id is kept as sent, since the natural key (and so the event id) is made of it."""
    return value if value is not None and value.strip() else None


def _candidate(sent: SynapWebhook) -> Candidate | None:
    user = sent.user
    if user is None:
        return None
    candidate = Candidate(id=_id(user.id), name=user.name, email=user.email)
    return None if candidate == Candidate() else candidate


def _result(sent: SynapWebhook) -> Result | None:
    attempt = sent.attempt
    if attempt is None:
        return None
    # The values are checked even when no result is published from them: a count or a fraction out
    # of its domain says the body is not what Synap documents.
    fraction = rules.within("synap", "attempt.scoreFrac", attempt.scoreFrac, 0, 1)
    correct, questions, answered = _counts(attempt)
    spent = rules.not_negative("synap", "attempt.timeSpentInMs", attempt.timeSpentInMs)
    max_points = rules.not_negative(
        "synap", "attempt.marks.maxPoints", attempt.marks.maxPoints if attempt.marks else None
    )
    grade = attempt.grade
    if attempt.score is None and (grade is None or grade.label is None) and max_points is None:
        return None
    return Result(
        score=attempt.score,
        max_score=max_points,
        percent=round(fraction * 100, 4) if fraction is not None else None,
        # A grade without its label is not published: `label` is what the event's grade is.
        grade=Grade(label=grade.label, passed=grade.isPass) if grade and grade.label is not None else None,
        correct=correct,
        unanswered=questions - answered if questions is not None and answered is not None else None,
        duration_minutes=round(spent / 60000, 3) if spent else None,
    )


def _counts(attempt: SynapAttempt) -> tuple[int | None, int | None, int | None]:
    correct = rules.count("synap", "attempt.totalAnsweredCorrectly", attempt.totalAnsweredCorrectly)
    questions = rules.count("synap", "attempt.totalQuestions", attempt.totalQuestions)
    answered = rules.count("synap", "attempt.totalAnswered", attempt.totalAnswered)
    # `unanswered` is derived from the two: more answers than questions would make it negative.
    if questions is not None and answered is not None and answered > questions:
        raise rules.reject(
            "synap", "attempt.totalAnswered", answered, f"is more than `attempt.totalQuestions` {questions}"
        )
    if correct is not None and questions is not None and correct > questions:
        raise rules.reject(
            "synap",
            "attempt.totalAnsweredCorrectly",
            correct,
            f"is more than `attempt.totalQuestions` {questions}",
        )
    return correct, questions, answered


SPEC = VendorSpec(
    vendor=Vendor.SYNAP,
    media_types=frozenset({"application/json"}),
    auth_kinds=frozenset({"basic", "none"}),  # basic auth is optional; no signature is documented
    event_per_url=True,  # only the results-released body names its event
    documented_events=(
        "attemptOverride.created",
        "user.registered",
        "user.updated",
        "user.addedToGroup",
        "user.registeredForExam",
        "assignment.completed",
        "flag.planted",
    ),
    normalize=normalize,
)
