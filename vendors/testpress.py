"""Testpress: attempt `started` and `completed`, numbers sometimes sent as strings."""

import msgspec

from common.decoding import DECODE_ERRORS
from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Result, Section, Status
from schemas.testpress import TestpressAttempt
from schemas.vendor import Vendor
from vendors import rules
from vendors.base import Normalized, VendorSpec, decode_failure, result_event, text_or_none

_VENDOR = "testpress"

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
    except DECODE_ERRORS as error:
        raise decode_failure("testpress", error) from None

    state = sent.attempt_state.strip()
    status = STATUSES.get(state.lower())
    if status is None:
        # Testpress fires at start and at completion only, and `attempt_state` is not covered by the
        # hash: a state it does not document is a body to look at, not an event to publish.
        raise rules.reject(_VENDOR, "attempt_state", state, "is not a documented state (started, completed)")
    rules.instant(_VENDOR, "attempt_start_time", sent.attempt_start_time)
    rules.instant(_VENDOR, "completed_on", sent.completed_on)
    result = _result(sent)
    natural_key = f"{sent.attempt_id}|{state}|{sent.hash.lower()}"
    attempt_id = str(sent.attempt_id)
    event = result_event(
        envelope,
        natural_key,
        state,
        status,
        occurred_at=sent.completed_on if status is Status.COMPLETED else sent.attempt_start_time,
        exam=ExamRef(
            key=f"attempt:{attempt_id}",
            attempt_id=attempt_id,
            test_id=str(sent.exam.id) if sent.exam and sent.exam.id is not None else None,
            title=sent.exam.title if sent.exam else None,
        ),
        candidate=Candidate(
            id=str(sent.user_id) if sent.user_id is not None else None,
            external_id=text_or_none(sent.institute_attempt_id),
            username=sent.username,
            email=sent.email,
        ),
        result=result if status is Status.COMPLETED else None,
        attributes={"exam_id": sent.exam.id} if sent.exam and sent.exam.id is not None else {},
    )
    return [Normalized(natural_key, event)]


def _result(sent: TestpressAttempt) -> Result:
    """Checked on every call, started ones too: they carry the same fields (as zeros)."""
    # Lax decoding turns "nan" and "inf" into floats; no score is either. Testpress marks negatively,
    # so a score below zero is possible and not checked.
    sections = []
    for n, stat in enumerate(sent.subject_stats or ()):
        score = rules.finite(_VENDOR, f"subject_stats[{n}].score", stat.score)
        if stat.subject_name:
            sections.append(Section(name=stat.subject_name, score=score))
    return Result(
        score=rules.finite(_VENDOR, "score", sent.score),
        percent=rules.within(_VENDOR, "percentage", sent.percentage, 0, 100),
        correct=_count("correct_answers_count", sent.correct_answers_count),
        incorrect=_count("incorrect_answers_count", sent.incorrect_answers_count),
        unanswered=_count("unanswered_answers_count", sent.unanswered_answers_count),
        sections=sections,
    )


def _count(field: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise rules.reject(_VENDOR, field, value, "is negative")
    return value


SPEC = VendorSpec(
    vendor=Vendor.TESTPRESS,
    media_types=frozenset({"application/json"}),
    auth_kinds=frozenset({"testpress_hash"}),
    normalize=normalize,
)
