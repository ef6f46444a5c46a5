"""Synap: one event per URL, so the event name comes from the source (only results-released bodies
name their event in `meta.eventName`)."""

import msgspec

from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Grade, Result, ResultEvent, Status
from schemas.synap import SynapWebhook
from workers.errors import RejectedWebhook
from workers.vendors.base import Normalized, decode_failure, event_id, vendor_event_type

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
    except msgspec.MsgspecError as error:
        raise decode_failure("synap", error) from None

    name = envelope.event or sent.meta.eventName
    if not name:
        raise RejectedWebhook("synap: no event name (set `event` on the source: Synap sends one per URL)")
    status = status_of(name)
    attempt, exam, user = sent.attempt, sent.exam, sent.user

    ids = (attempt.id if attempt else "", exam.id if exam else "", user.id if user else "")
    natural_key = f"{name}|{'|'.join(ids)}|{sent.meta.timestamp.isoformat()}"

    exam_ref = None
    if attempt is not None:
        exam_ref = ExamRef(key=f"attempt:{attempt.id}", attempt_id=attempt.id)
    elif exam is not None and user is not None:
        exam_ref = ExamRef(key=f"exam:{exam.id}/user:{user.id}")
    if exam_ref is not None:
        exam_ref = ExamRef(
            key=exam_ref.key,
            attempt_id=exam_ref.attempt_id,
            test_id=sent.test.id if sent.test else None,
            title=(exam.name if exam else None) or (sent.test.title if sent.test else None),
        )

    attributes: dict[str, str | int | float | bool | None] = {}
    if sent.portal is not None:
        attributes["portal_id"] = sent.portal.id
    if exam is not None:
        attributes["exam_id"] = exam.id
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

    event = ResultEvent(
        id=event_id(envelope, natural_key),
        type=status.value if status else vendor_event_type(name),
        vendor=envelope.vendor,
        source=envelope.source,
        webhook_id=envelope.id,
        vendor_event=name,
        received_at=envelope.received_at,
        occurred_at=sent.meta.timestamp,
        status=status,
        exam=exam_ref,
        candidate=Candidate(id=user.id, name=user.name, email=user.email) if user else None,
        result=_result(sent),
        attributes=attributes,
    )
    return [Normalized(natural_key, event)]


def _result(sent: SynapWebhook) -> Result | None:
    attempt = sent.attempt
    if attempt is None or (attempt.score is None and attempt.grade is None and attempt.marks is None):
        return None
    return Result(
        score=attempt.score,
        max_score=attempt.marks.maxPoints if attempt.marks else None,
        percent=round(attempt.scoreFrac * 100, 4) if attempt.scoreFrac is not None else None,
        grade=Grade(label=attempt.grade.label, passed=attempt.grade.isPass) if attempt.grade else None,
        correct=int(attempt.totalAnsweredCorrectly) if attempt.totalAnsweredCorrectly is not None else None,
        unanswered=(
            attempt.totalQuestions - attempt.totalAnswered
            if attempt.totalQuestions is not None and attempt.totalAnswered is not None
            else None
        ),
        duration_minutes=round(attempt.timeSpentInMs / 60000, 3) if attempt.timeSpentInMs else None,
    )
