"""Testpress: attempt `started` and `completed`, numbers sometimes sent as strings."""

import msgspec

from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Result, ResultEvent, Section, Status
from schemas.testpress import TestpressAttempt
from workers.vendors.base import Normalized, decode_failure, event_id, text_or_none, vendor_event_type

# Lax: "31" decodes as 31 and "62.00" as 62.0, as Testpress sends both forms.
_decoder = msgspec.json.Decoder(TestpressAttempt, strict=False)

STATUSES: dict[str, Status] = {
    "started": Status.STARTED,
    "running": Status.STARTED,
    "completed": Status.COMPLETED,
}


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    try:
        sent = _decoder.decode(envelope.body)
    except msgspec.MsgspecError as error:
        raise decode_failure("testpress", error) from None

    state = sent.attempt_state.strip()
    status = STATUSES.get(state.lower())
    natural_key = f"{sent.attempt_id}|{state}|{sent.hash.lower()}"
    attempt_id = str(sent.attempt_id)
    event = ResultEvent(
        id=event_id(envelope, natural_key),
        type=status.value if status else vendor_event_type(state),
        vendor=envelope.vendor,
        source=envelope.source,
        webhook_id=envelope.id,
        vendor_event=state,
        received_at=envelope.received_at,
        occurred_at=sent.completed_on if status is Status.COMPLETED else sent.attempt_start_time,
        status=status,
        exam=ExamRef(
            key=f"attempt:{attempt_id}",
            attempt_id=attempt_id,
            test_id=str(sent.exam.id) if sent.exam else None,
            title=sent.exam.title if sent.exam else None,
        ),
        candidate=Candidate(
            id=str(sent.user_id),
            external_id=text_or_none(sent.institute_attempt_id),
            username=sent.username,
            email=sent.email,
        ),
        result=_result(sent) if status is Status.COMPLETED else None,
        attributes={"exam_id": sent.exam.id} if sent.exam else {},
    )
    return [Normalized(natural_key, event)]


def _result(sent: TestpressAttempt) -> Result:
    return Result(
        score=sent.score,
        percent=sent.percentage,
        correct=sent.correct_answers_count,
        incorrect=sent.incorrect_answers_count,
        unanswered=sent.unanswered_answers_count,
        sections=[
            Section(name=stat.subject_name, score=stat.score)
            for stat in sent.subject_stats
            if stat.subject_name
        ],
    )
