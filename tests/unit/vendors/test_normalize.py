"""Pure normalization: vendor bodies in, normalized events out. No I/O."""

import json
from datetime import UTC, date, datetime

import pytest

from devkit import samples
from schemas.event import Status, decode_event, encode_event
from schemas.vendor import Vendor
from vendors.base import RejectedWebhook
from workers.router.normalize import normalize


def one(env):  # type: ignore[no-untyped-def]
    [item] = normalize(env)
    return item


@pytest.mark.parametrize("form", [samples.itep_urlencoded, samples.itep_multipart])
def test_itep_complete_from_either_form(form) -> None:  # type: ignore[no-untyped-def]
    body, content_type = form(samples.ITEP_COMPLETE)
    event = one(samples.envelope(Vendor.ITEP, body, content_type=content_type)).event
    assert event.type == "completed" and event.status is Status.COMPLETED
    assert event.vendor_event == "Complete"
    assert event.exam is not None and event.exam.key == "3279B035APR"
    assert event.exam.taken_on == date(2024, 6, 10)  # TestDate "6/10/2024", not a raw attribute
    assert event.candidate is not None and event.candidate.external_id == "cand-0042"
    assert event.occurred_at is None  # iTEP sends no timestamp
    assert "test_date" not in event.attributes
    result = event.result
    assert result is not None
    assert (result.level, result.cefr, result.duration_minutes) == (4.5, "C1", 67.5)
    sections = {s.name: s for s in result.sections}
    assert list(sections) == ["grammar", "listening", "reading", "writing", "speaking"]
    assert (sections["reading"].level, sections["reading"].percent, sections["reading"].cefr) == (
        6.0,
        100.0,
        "C2",
    )
    assert sections["grammar"].score == 68.0


def test_itep_same_data_in_either_form_is_one_event() -> None:
    url_body, url_type = samples.itep_urlencoded(samples.ITEP_COMPLETE)
    mp_body, mp_type = samples.itep_multipart(samples.ITEP_COMPLETE)
    a = one(samples.envelope(Vendor.ITEP, url_body, content_type=url_type))
    b = one(samples.envelope(Vendor.ITEP, mp_body, content_type=mp_type))
    assert a.natural_key == b.natural_key and a.event.id == b.event.id
    assert a.event.webhook_id != b.event.webhook_id


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        ("Finished", Status.FINISHED),
        ("Complete", Status.COMPLETED),
        ("Completed", Status.COMPLETED),
        ("Invalidated", Status.INVALIDATED),
        ("Technical Difficulty", Status.TECHNICAL_DIFFICULTY),
        ("Problem", Status.TECHNICAL_DIFFICULTY),
        ("Review", Status.IN_REVIEW),
        ("Disabled", Status.DISABLED),
        ("Ready", Status.RESET),
        ("Started", Status.RESET),
        ("Incomplete", Status.RESET),
    ],
)
def test_itep_both_spellings_of_every_status(sent: str, status: Status) -> None:
    body, content_type = samples.itep_urlencoded(samples.itep(sent))
    event = one(samples.envelope(Vendor.ITEP, body, content_type=content_type)).event
    assert event.status is status and event.type == status.value


def test_itep_finished_before_grading_has_no_scores() -> None:
    body, content_type = samples.itep_urlencoded(samples.itep("Finished"))
    result = one(samples.envelope(Vendor.ITEP, body, content_type=content_type)).event.result
    assert result is not None and result.duration_minutes == 67.5
    assert (result.level, result.cefr, result.sections) == (None, None, [])


def test_itep_bare_minimum_has_no_result_at_all() -> None:
    body, content_type = samples.itep_urlencoded({"OID": "", "TestID": "T1", "Status": "Finished"})
    event = one(samples.envelope(Vendor.ITEP, body, content_type=content_type)).event
    assert event.result is None
    assert event.candidate is not None and event.candidate.external_id is None  # empty OID


def test_itep_unknown_status_is_kept_as_vendor_event() -> None:
    body, content_type = samples.itep_urlencoded(samples.itep("Proctor Hold"))
    event = one(samples.envelope(Vendor.ITEP, body, content_type=content_type)).event
    assert event.status is None and event.type == "event.proctor_hold"


def test_itep_numbers_as_numbers_or_strings_alike() -> None:
    a, t = samples.itep_urlencoded(samples.itep(Overall_Level=4.5, Duration=67.5))
    b, _ = samples.itep_urlencoded(samples.itep(Overall_Level="4.5", Duration="67.5"))
    ra = one(samples.envelope(Vendor.ITEP, a, content_type=t)).event.result
    rb = one(samples.envelope(Vendor.ITEP, b, content_type=t)).event.result
    assert ra is not None and rb is not None
    assert (ra.level, ra.duration_minutes) == (rb.level, rb.duration_minutes) == (4.5, 67.5)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"other=1", "application/x-www-form-urlencoded", "form field `data` is missing"),
        (b"data=1&data=2", "application/x-www-form-urlencoded", "more than once"),
        (b"data=%7Bnot+json", "application/x-www-form-urlencoded", "itep: field `data`: JSON is malformed"),
        (b'data={"TestID":"x"}', "application/x-www-form-urlencoded", "missing required field `Status`"),
        (
            b'data={"TestID":"x","Status":"Complete","Overall_Level":"high"}',
            "application/x-www-form-urlencoded",
            "`Overall_Level`: expected a number",
        ),
        (b"--x\r\n\r\n", "multipart/form-data", "boundary"),
    ],
)
def test_itep_rejections_say_why(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(RejectedWebhook) as raised:
        normalize(samples.envelope(Vendor.ITEP, body, content_type=content_type))
    assert reason in raised.value.reason


def test_inspera_final_grades_for_a_candidate() -> None:
    event = one(samples.envelope(Vendor.INSPERA, samples.as_json(samples.inspera()))).event
    assert event.status is Status.COMPLETED and event.type == "completed"
    assert event.occurred_at == datetime(2021, 6, 29, 18, 16, 6, tzinfo=UTC)
    assert event.exam is not None and event.exam.key == "ASSESSMENT_RUN:74379551/CANDIDATE:5550101"
    assert event.exam.test_id == "74379551"
    assert event.candidate is not None and event.candidate.id == "5550101"
    assert event.attributes["marketplace_id"] == 1357554


def test_inspera_unknown_event_is_kept() -> None:
    body = samples.inspera(event="brand_new_event", candidate_id=None)
    body["contextObjectType"] = "QUESTION_SET"
    event = one(samples.envelope(Vendor.INSPERA, samples.as_json(body))).event
    assert event.type == "event.brand_new_event" and event.status is None and event.exam is None


def test_inspera_verification_ping_is_not_json() -> None:
    ping = b"{contextObjectId=0, contextObjectTitle=7d4e, event=verification, timestamp=2024-01-01T00:00:00Z}"
    with pytest.raises(RejectedWebhook, match="inspera: JSON is malformed"):
        normalize(samples.envelope(Vendor.INSPERA, ping))


def test_synap_results_released() -> None:
    env = samples.envelope(
        Vendor.SYNAP, samples.as_json(samples.synap_released()), event="exam.resultsReleased"
    )
    event = one(env).event
    assert event.status is Status.RELEASED and event.vendor_event == "exam.resultsReleased"
    assert (
        event.exam is not None and event.exam.key == "attempt:att-9001" and event.exam.title == "Maths 2024"
    )
    assert event.candidate is not None and event.candidate.email == "ada@example.com"
    result = event.result
    assert result is not None and result.grade is not None
    assert (result.score, result.max_score, result.percent) == (72.5, 100.0, 72.5)
    assert (result.grade.label, result.grade.passed, result.correct, result.unanswered) == (
        "Merit",
        True,
        29,
        2,
    )
    assert "proctor_status" not in event.attributes  # sent as null
    assert event.attributes["marking_status"] == "marked"


def test_synap_event_comes_from_the_source_not_the_body() -> None:
    body = samples.synap_released()
    del body["meta"]["eventName"]
    event = one(samples.envelope(Vendor.SYNAP, samples.as_json(body), event="attempt.submitted")).event
    assert event.status is Status.FINISHED and event.vendor_event == "attempt.submitted"
    with pytest.raises(RejectedWebhook, match="no event name"):
        normalize(samples.envelope(Vendor.SYNAP, samples.as_json(body)))


def test_synap_user_event_has_no_exam() -> None:
    body = {
        "meta": {"timestamp": "2024-05-02T10:15:00Z"},
        "user": {"id": "user-77", "email": "ada@example.com"},
    }
    event = one(samples.envelope(Vendor.SYNAP, samples.as_json(body), event="user.registered")).event
    assert event.type == "event.user.registered" and event.exam is None and event.status is None


def test_testpress_completed_with_numbers_as_strings() -> None:
    event = one(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress()))).event
    assert event.status is Status.COMPLETED
    assert event.exam is not None and event.exam.key == "attempt:4512" and event.exam.test_id == "27"
    assert event.candidate is not None and (event.candidate.id, event.candidate.email) == (
        "918",
        "student@example.com",
    )
    result = event.result
    assert result is not None
    assert (result.score, result.percent, result.correct, result.incorrect, result.unanswered) == (
        87.5,
        62.0,
        31,
        12,
        7,
    )
    assert event.occurred_at is not None and event.occurred_at.utcoffset() is not None


def test_testpress_started_has_no_result() -> None:
    event = one(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress("started")))).event
    assert event.status is Status.STARTED and event.result is None


def test_event_ids_are_stable_and_distinct() -> None:
    body = samples.as_json(samples.inspera())
    a = one(samples.envelope(Vendor.INSPERA, body)).event
    b = one(samples.envelope(Vendor.INSPERA, body)).event
    c = one(
        samples.envelope(Vendor.INSPERA, samples.as_json(samples.inspera(timestamp="2021-06-29T18:16:07Z")))
    ).event
    assert a.id == b.id != c.id


def test_normalized_event_round_trips_through_json() -> None:
    event = one(
        samples.envelope(Vendor.SYNAP, samples.as_json(samples.synap_released()), event="x.released")
    ).event
    assert decode_event(encode_event(event)) == event


def test_itep_multipart_with_quoted_boundary_and_other_fields() -> None:
    data = json.dumps(samples.itep("Complete", test_id="MP1"))
    body = (
        "preamble\r\n--b0und\r\n"
        'Content-Disposition: form-data; name="other"\r\n\r\nx\r\n'
        "--b0und\r\n"
        'content-disposition: form-data; name="data"\r\nContent-Type: application/json\r\n\r\n'
        f"{data}\r\n--b0und--\r\n"
    ).encode()
    event = one(
        samples.envelope(Vendor.ITEP, body, content_type='multipart/form-data; boundary="b0und"')
    ).event
    assert event.exam is not None and event.exam.key == "MP1"
