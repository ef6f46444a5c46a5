# ruff: noqa: RUF001 - the reasons write a range with an en dash, as the vendors' documents do
"""The vendors' documented value domains (inside, on and outside each bound) and which fields a webhook
may leave out, send empty or send as null. Pure: bodies in, events or rejections out."""

import json
from datetime import date
from typing import Any

import pytest

from devkit import samples
from schemas.event import ResultEvent, Status, encode_event
from schemas.itep import ITEP_SECTIONS
from schemas.vendor import Vendor
from vendors.base import RejectedWebhook
from workers.router.normalize import normalize

ABSENT = object()  # a key left out of the body
# How a vendor can leave out an object or field the event does not need.
MISSING = pytest.mark.parametrize("missing", [ABSENT, None, {}], ids=["absent", "null", "empty"])


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the value at `path` replaced, or removed for ABSENT."""
    copy: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = path
    node = copy
    for key in parents:
        node = node[key]
    if value is ABSENT:
        node.pop(last, None)
    else:
        node[last] = value
    return copy


def _event(vendor: Vendor, body: dict[str, Any], **options: Any) -> ResultEvent:
    if vendor is Vendor.ITEP:
        raw, content_type = samples.itep_urlencoded(body)
        env = samples.envelope(vendor, raw, content_type=content_type, **options)
    else:
        env = samples.envelope(vendor, samples.as_json(body), **options)
    [item] = normalize(env)
    return item.event


def _rejection(vendor: Vendor, body: dict[str, Any], **options: Any) -> str:
    with pytest.raises(RejectedWebhook) as raised:
        _event(vendor, body, **options)
    return raised.value.reason


# iTEP ---------------------------------------------------------------------------------------------

LEVELS = ["Overall_Level", *(f"{name}_Level" for name in ITEP_SECTIONS)]
PERCENTS = [f"{name}_Percent" for name in ITEP_SECTIONS]


def _itep(**changes: Any) -> dict[str, Any]:
    body = dict(samples.ITEP_COMPLETE)
    for key, value in changes.items():
        body = _with(body, (key,), value)
    return body


def _itep_level(event: ResultEvent, field: str) -> float | None:
    assert event.result is not None
    if field == "Overall_Level":
        return event.result.level
    [section] = [s for s in event.result.sections if s.name == field.split("_")[0].lower()]
    return section.level


@pytest.mark.parametrize("field", LEVELS)
@pytest.mark.parametrize(
    ("sent", "level"), [("0.0", 0.0), (0, 0.0), ("3.5", 3.5), (6, 6.0), ("6.0", 6.0), (" 6 ", 6.0)]
)
def test_itep_levels_inside_and_on_the_bounds(field: str, sent: Any, level: float) -> None:
    assert _itep_level(_event(Vendor.ITEP, _itep(**{field: sent})), field) == level


@pytest.mark.parametrize("field", LEVELS)
@pytest.mark.parametrize(("sent", "shown"), [("-0.5", "-0.5"), (-1, "-1"), ("6.5", "6.5"), (7.5, "7.5")])
def test_itep_levels_outside_the_bounds_reject(field: str, sent: Any, shown: str) -> None:
    assert _rejection(Vendor.ITEP, _itep(**{field: sent})) == f"itep: `{field}` {shown} is outside 0.0–6.0"


@pytest.mark.parametrize("field", PERCENTS)
@pytest.mark.parametrize(
    ("sent", "percent"), [("0", 0.0), (0, 0.0), ("67.5", 67.5), ("100", 100.0), (100, 100.0)]
)
def test_itep_percents_inside_and_on_the_bounds(field: str, sent: Any, percent: float) -> None:
    result = _event(Vendor.ITEP, _itep(**{field: sent})).result
    assert result is not None
    [section] = [s for s in result.sections if s.name == field.split("_")[0].lower()]
    assert section.percent == percent


@pytest.mark.parametrize("field", PERCENTS)
@pytest.mark.parametrize(
    ("sent", "shown"), [("-1", "-1"), (-0.01, "-0.01"), ("100.5", "100.5"), (101, "101")]
)
def test_itep_percents_outside_the_bounds_reject(field: str, sent: Any, shown: str) -> None:
    assert _rejection(Vendor.ITEP, _itep(**{field: sent})) == f"itep: `{field}` {shown} is outside 0–100"


def test_itep_duration_is_a_number_of_minutes() -> None:
    result = _event(Vendor.ITEP, _itep(Duration="0")).result
    assert result is not None and result.duration_minutes == 0.0
    assert _rejection(Vendor.ITEP, _itep(Duration="-1")) == "itep: `Duration` -1 is negative"


def test_itep_a_nan_or_infinite_value_is_not_a_level() -> None:
    for sent in ("NaN", "inf", "-Infinity"):
        assert "expected a finite number" in _rejection(Vendor.ITEP, _itep(Overall_Level=sent))


# The date parts alone (no TestDate), so that each bound is judged by its own rule.
_NO_DATE = {"TestDate": ABSENT, "TestMonth": ABSENT, "TestDay": ABSENT, "TestYear": ABSENT}


@pytest.mark.parametrize(
    ("field", "sent"),
    [
        ("TestMonth", "1"),
        ("TestMonth", 12),
        ("TestMonth", "06"),
        ("TestDay", "1"),
        ("TestDay", 31),
        ("TestYear", "1901"),
        ("TestYear", 2024),
    ],
)
def test_itep_date_parts_inside_and_on_the_bounds(field: str, sent: Any) -> None:
    event = _event(Vendor.ITEP, _itep(**{**_NO_DATE, field: sent}))
    assert event.exam is not None and event.exam.taken_on is None  # one part alone names no day


@pytest.mark.parametrize(
    ("field", "sent", "rule"),
    [
        ("TestMonth", "0", "0 is outside 1–12"),
        ("TestMonth", 13, "13 is outside 1–12"),
        ("TestMonth", "6.5", "6.5 is not a whole number"),
        ("TestDay", 0, "0 is outside 1–31"),
        ("TestDay", "32", "32 is outside 1–31"),
        ("TestYear", "1900", "1900 is not greater than 1900"),
        ("TestYear", 1066, "1066 is not greater than 1900"),
        ("TestYear", "2024.5", "2024.5 is not a whole number"),
    ],
)
def test_itep_date_parts_outside_the_bounds_reject(field: str, sent: Any, rule: str) -> None:
    assert _rejection(Vendor.ITEP, _itep(**{**_NO_DATE, field: sent})) == f"itep: `{field}` {rule}"


@pytest.mark.parametrize(
    ("sent", "day"),
    [
        ("6/10/2024", date(2024, 6, 10)),
        ("6\\10\\2024", date(2024, 6, 10)),  # iTEP's own sample writes backslashes
        ("6\\10/2024", date(2024, 6, 10)),
        ("06/01/2024", date(2024, 6, 1)),
        (" 1/1/1901 ", date(1901, 1, 1)),
        ("12/31/2024", date(2024, 12, 31)),
        ("2/29/2024", date(2024, 2, 29)),  # a leap year
    ],
)
def test_itep_test_date_forms_are_published_as_a_day(sent: str, day: date) -> None:
    event = _event(Vendor.ITEP, _itep(**{**_NO_DATE, "TestDate": sent}))
    assert event.exam is not None and event.exam.taken_on == day


@pytest.mark.parametrize(
    ("sent", "rule"),
    [
        ("2/30/2024", "'2/30/2024' is not a real calendar date"),
        ("2/29/2023", "'2/29/2023' is not a real calendar date"),
        ("4/31/2024", "'4/31/2024' is not a real calendar date"),
        ("0/10/2024", "'0/10/2024': month 0 is outside 1–12"),
        ("13/10/2024", "'13/10/2024': month 13 is outside 1–12"),
        ("6/0/2024", "'6/0/2024': day 0 is outside 1–31"),
        ("6/32/2024", "'6/32/2024': day 32 is outside 1–31"),
        ("6/10/1900", "'6/10/1900': year 1900 is not greater than 1900"),
        ("2024-06-10", "'2024-06-10' is not in the documented M/D/YYYY form"),
        ("6/10/24", "'6/10/24' is not in the documented M/D/YYYY form"),
        ("6.10.2024", "'6.10.2024' is not in the documented M/D/YYYY form"),
        ("June 10, 2024", "'June 10, 2024' is not in the documented M/D/YYYY form"),
        ("٦/١٠/٢٠٢٤", "'٦/١٠/٢٠٢٤' is not in the documented M/D/YYYY form"),  # not ASCII digits
    ],
)
def test_itep_test_date_that_is_no_real_day_rejects(sent: str, rule: str) -> None:
    assert _rejection(Vendor.ITEP, _itep(**{**_NO_DATE, "TestDate": sent})) == f"itep: `TestDate` {rule}"


@pytest.mark.parametrize("raw_date", [rb"3\/5\/2021", rb"3\\5\\2021", rb"3/5/2021"])
def test_itep_test_date_escaped_in_the_json_as_the_vendor_writes_it(raw_date: bytes) -> None:
    data = b'{"TestID":"ESC1","Status":"Complete","TestDate":"' + raw_date + b'","TestMonth":"3"}'
    body, content_type = samples.itep_multipart({})
    body = body.replace(b"{}", data)
    [item] = normalize(samples.envelope(Vendor.ITEP, body, content_type=content_type))
    assert item.event.exam is not None and item.event.exam.taken_on == date(2021, 3, 5)


def test_itep_test_date_agrees_with_the_parts_sent_as_numbers_or_strings() -> None:
    for parts in ({"TestMonth": 6, "TestDay": 10, "TestYear": 2024}, {"TestMonth": "6", "TestDay": "10"}):
        event = _event(Vendor.ITEP, _itep(**{**_NO_DATE, "TestDate": "6/10/2024", **parts}))
        assert event.exam is not None and event.exam.taken_on == date(2024, 6, 10)


@pytest.mark.parametrize(
    ("field", "sent"), [("TestMonth", "7"), ("TestDay", 11), ("TestYear", "2023"), ("TestMonth", "10")]
)
def test_itep_test_date_disagreeing_with_a_part_rejects(field: str, sent: Any) -> None:
    reason = _rejection(Vendor.ITEP, _itep(**{field: sent}))
    assert reason == f"itep: `{field}` {sent} does not match `TestDate` '6/10/2024'"


def test_itep_day_from_the_parts_when_no_test_date_is_sent() -> None:
    for no_date in (ABSENT, "", None):
        body = _itep(TestDate=no_date, TestMonth="2", TestDay="29", TestYear="2024")
        event = _event(Vendor.ITEP, body)
        assert event.exam is not None and event.exam.taken_on == date(2024, 2, 29)
    reason = _rejection(Vendor.ITEP, _itep(TestDate="", TestMonth="2", TestDay="30", TestYear="2024"))
    assert reason == "itep: `TestMonth`/`TestDay`/`TestYear` 2/30/2024 is not a real calendar date"
    reason = _rejection(Vendor.ITEP, _itep(TestDate="", TestMonth="2", TestDay="1", TestYear="1e300"))
    assert reason == "itep: `TestMonth`/`TestDay`/`TestYear` 2/1/1e+300 is not a real calendar date"


def test_itep_a_huge_number_is_shown_short_in_the_reason() -> None:
    reason = _rejection(Vendor.ITEP, _itep(**{**_NO_DATE, "TestMonth": "1e300"}))
    assert reason == "itep: `TestMonth` 1e+300 is outside 1–12"


def test_itep_day_is_iso_8601_in_the_event_and_the_raw_string_is_gone() -> None:
    event = _event(Vendor.ITEP, samples.ITEP_COMPLETE)
    published = json.loads(encode_event(event))
    assert published["exam"]["taken_on"] == "2024-06-10"
    assert "test_date" not in published.get("attributes", {})


@pytest.mark.parametrize("section", ITEP_SECTIONS)
@pytest.mark.parametrize("missing", [ABSENT, None, ""], ids=["absent", "null", "empty"])
def test_itep_a_section_left_out_is_accepted(section: str, missing: Any) -> None:
    fields = [f"{section}_{part}" for part in ("Level", "Score", "Percent", "cefr")]
    result = _event(Vendor.ITEP, _itep(**dict.fromkeys(fields, missing))).result
    assert result is not None and result.level == 4.5
    names = [s.name for s in result.sections]
    assert section.lower() not in names and len(names) == len(ITEP_SECTIONS) - 1


@pytest.mark.parametrize(
    "field",
    [
        "OID",
        "Duration",
        "TestDate",
        "score_report_url",
        "Overall_Level",
        "Overall_cefr",
        "Writing_Question_Count",
        "Writing_Question_1",
    ],
)
@pytest.mark.parametrize("missing", [ABSENT, None, ""], ids=["absent", "null", "empty"])
def test_itep_a_field_the_event_can_do_without_may_be_left_out(field: str, missing: Any) -> None:
    event = _event(Vendor.ITEP, _itep(**{field: missing}))
    assert event.status is Status.COMPLETED and event.exam is not None


def test_itep_fields_the_event_does_not_carry_are_not_judged() -> None:
    event = _event(Vendor.ITEP, _itep(Writing_Question_Count=-3, Writing_Answer_1={"odd": [1]}))
    assert event.status is Status.COMPLETED


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"TestID": ABSENT}, "missing required field `TestID`"),
        ({"TestID": None}, "Expected `str`, got `null` - at `$.TestID`"),
        ({"TestID": ""}, "itep: `TestID` is missing or empty"),
        ({"TestID": "  "}, "itep: `TestID` is missing or empty"),
        ({"Status": ABSENT}, "missing required field `Status`"),
        ({"Status": ""}, "itep: `Status` is empty"),
    ],
)
def test_itep_identity_and_status_are_required(changes: dict[str, Any], reason: str) -> None:
    assert reason in _rejection(Vendor.ITEP, _itep(**changes))


# Inspera ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["2021-06-29T18:16:06Z", "2021-06-29T20:16:06+02:00", "2021-06-29T18:16:06.250Z"]
)
def test_inspera_timestamp_with_an_offset_is_an_instant(timestamp: str) -> None:
    event = _event(Vendor.INSPERA, samples.inspera(timestamp=timestamp))
    assert event.occurred_at is not None and event.occurred_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("2021-06-29T18:16:06", "inspera: `timestamp` '2021-06-29T18:16:06' has no time zone offset"),
        ("2021-02-30T18:16:06Z", "Invalid RFC3339 encoded datetime - at `$.timestamp`"),
        ("2021-06-29T25:16:06Z", "Invalid RFC3339 encoded datetime - at `$.timestamp`"),
        ("yesterday", "Invalid RFC3339 encoded datetime - at `$.timestamp`"),
        ("", "Invalid RFC3339 encoded datetime - at `$.timestamp`"),
    ],
)
def test_inspera_timestamp_that_is_no_instant_rejects(timestamp: str, reason: str) -> None:
    assert reason in _rejection(Vendor.INSPERA, samples.inspera(timestamp=timestamp))


@pytest.mark.parametrize(
    "field", ["marketplaceId", "associatedObjectId", "associatedObjectType", "triggeringUserId", "extraInfo"]
)
@pytest.mark.parametrize("missing", [ABSENT, None], ids=["absent", "null"])
def test_inspera_optional_fields_may_be_left_out(field: str, missing: Any) -> None:
    body = _with(
        {**samples.inspera(), "triggeringUserId": 42, "extraInfo": {"type": "String"}}, (field,), missing
    )
    event = _event(Vendor.INSPERA, body)
    assert event.status is Status.COMPLETED and event.exam is not None


@pytest.mark.parametrize("extra", [{}, {"value": "x"}, {"type": "JSON", "value": {"a": [1]}}])
def test_inspera_extra_info_empty_or_partial_is_accepted(extra: dict[str, Any]) -> None:
    event = _event(Vendor.INSPERA, {**samples.inspera(), "extraInfo": extra})
    assert event.attributes.get("extra_info_type") == extra.get("type")


def test_inspera_without_marketplace_leaves_the_attribute_out() -> None:
    event = _event(Vendor.INSPERA, _with(samples.inspera(), ("marketplaceId",), ABSENT))
    assert "marketplace_id" not in event.attributes


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event", ABSENT, "missing required field `event`"),
        ("event", " ", "inspera: `event` is empty"),
        ("contextObjectId", ABSENT, "missing required field `contextObjectId`"),
        ("contextObjectId", None, "Expected `int`, got `null` - at `$.contextObjectId`"),
        ("contextObjectType", ABSENT, "missing required field `contextObjectType`"),
        ("contextObjectType", "", "inspera: `contextObjectType` is missing or empty"),
        ("timestamp", ABSENT, "missing required field `timestamp`"),
        ("timestamp", None, "Expected `datetime`, got `null` - at `$.timestamp`"),
    ],
)
def test_inspera_identity_and_timestamp_are_required(field: str, value: Any, reason: str) -> None:
    assert reason in _rejection(Vendor.INSPERA, _with(samples.inspera(), (field,), value))


# Synap --------------------------------------------------------------------------------------------

RELEASED = "exam.resultsReleased"


def _synap(path: tuple[str, ...] = (), value: Any = ABSENT) -> dict[str, Any]:
    body = samples.synap_released()
    return _with(body, path, value) if path else body


@pytest.mark.parametrize(("fraction", "percent"), [(0, 0.0), (0.0, 0.0), (0.5, 50.0), (1, 100.0)])
def test_synap_score_fraction_inside_and_on_the_bounds(fraction: float, percent: float) -> None:
    result = _event(Vendor.SYNAP, _synap(("attempt", "scoreFrac"), fraction), event=RELEASED).result
    assert result is not None and result.percent == percent


@pytest.mark.parametrize(("fraction", "shown"), [(-0.01, "-0.01"), (1.01, "1.01"), (72.5, "72.5")])
def test_synap_score_fraction_outside_the_bounds_rejects(fraction: float, shown: str) -> None:
    reason = _rejection(Vendor.SYNAP, _synap(("attempt", "scoreFrac"), fraction), event=RELEASED)
    assert reason == f"synap: `attempt.scoreFrac` {shown} is outside 0–1"


@pytest.mark.parametrize(
    ("changes", "correct", "unanswered"),
    [
        ({}, 29, 2),
        ({"totalAnswered": 40}, 29, 0),  # answered == questions
        ({"totalAnswered": 0, "totalAnsweredCorrectly": 0}, 0, 40),
        ({"totalAnsweredCorrectly": 40, "totalAnswered": 40}, 40, 0),
        ({"totalQuestions": 0, "totalAnswered": 0, "totalAnsweredCorrectly": 0}, 0, 0),
        ({"totalAnsweredCorrectly": 29.0}, 29, 2),
    ],
)
def test_synap_counts_inside_and_on_the_bounds(
    changes: dict[str, Any], correct: int, unanswered: int
) -> None:
    body = _synap()
    body["attempt"].update(changes)
    result = _event(Vendor.SYNAP, body, event=RELEASED).result
    assert result is not None and (result.correct, result.unanswered) == (correct, unanswered)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"totalQuestions": -1}, "`attempt.totalQuestions` -1 is negative"),
        ({"totalAnswered": -1}, "`attempt.totalAnswered` -1 is negative"),
        ({"totalAnsweredCorrectly": -1}, "`attempt.totalAnsweredCorrectly` -1 is negative"),
        ({"totalQuestions": 40.5}, "`attempt.totalQuestions` 40.5 is not a whole number"),
        ({"totalAnsweredCorrectly": 28.5}, "`attempt.totalAnsweredCorrectly` 28.5 is not a whole number"),
        ({"totalAnswered": 41}, "`attempt.totalAnswered` 41 is more than `attempt.totalQuestions` 40"),
        (
            {"totalAnsweredCorrectly": 41},
            "`attempt.totalAnsweredCorrectly` 41 is more than `attempt.totalQuestions` 40",
        ),
        ({"timeSpentInMs": -1}, "`attempt.timeSpentInMs` -1 is negative"),
        ({"marks": {"maxPoints": -0.5}}, "`attempt.marks.maxPoints` -0.5 is negative"),
    ],
)
def test_synap_counts_and_durations_outside_their_domain_reject(changes: dict[str, Any], reason: str) -> None:
    body = _synap()
    body["attempt"].update(changes)
    assert _rejection(Vendor.SYNAP, body, event=RELEASED) == f"synap: {reason}"


def test_synap_zero_duration_and_max_points_are_inside() -> None:
    body = _synap()
    body["attempt"].update({"timeSpentInMs": 0, "marks": {"maxPoints": 0}})
    result = _event(Vendor.SYNAP, body, event=RELEASED).result
    assert result is not None and result.max_score == 0.0 and result.duration_minutes is None


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        (ABSENT, "missing required field `meta`"),
        (None, "Expected `object`, got `null` - at `$.meta`"),
        ({}, "missing required field `timestamp` - at `$.meta`"),
        (
            {"timestamp": "2024-05-02T10:15:00"},
            "synap: `meta.timestamp` '2024-05-02T10:15:00' has no time zone",
        ),
        ({"timestamp": "2024-13-02T10:15:00Z"}, "Invalid RFC3339 encoded datetime - at `$.meta.timestamp`"),
        ({"timestamp": None}, "Expected `datetime`, got `null` - at `$.meta.timestamp`"),
    ],
)
def test_synap_meta_timestamp_is_required_and_an_instant(meta: Any, reason: str) -> None:
    assert reason in _rejection(Vendor.SYNAP, _synap(("meta",), meta), event=RELEASED)


# Everything the documented results-released body carries that the event takes nothing from.
SYNAP_UNNEEDED = [
    ("user", "customAttributes"),
    ("user", "subPortalId"),
    ("portal",),
    ("test",),
    ("exam", "userGroup"),
    ("exam", "attr"),
    ("exam", "sourceTests"),
    ("exam", "resitCount"),
    ("attempt", "grade"),
    ("attempt", "gradeCriteria"),
    ("attempt", "marker"),
    ("attempt", "assignedModeratingMarkers"),
    ("attempt", "audit"),
    ("attempt", "tags"),
    ("attempt", "state"),
    ("attempt", "state", "results"),
    ("attempt", "marks"),
    ("attempt", "resitCount"),
    ("attempt", "timeStarted"),
    ("id",),
    ("timeStarted",),
]


@pytest.mark.parametrize("path", SYNAP_UNNEEDED, ids=".".join)
@MISSING
def test_synap_what_the_event_does_not_need_may_be_left_out(path: tuple[str, ...], missing: Any) -> None:
    event = _event(Vendor.SYNAP, _synap(path, missing), event=RELEASED)
    assert event.status is Status.RELEASED
    assert event.exam is not None and event.exam.key == "attempt:att-9001"
    assert event.result is not None and event.result.score == 72.5


@pytest.mark.parametrize(
    ("path", "odd"),
    [
        (("attempt", "marker"), {"id": 5}),
        (("attempt", "audit"), {"finalisedAt": "not a date"}),
        (("user", "customAttributes"), {"nested": {"deep": [1, 2]}}),
        (("exam", "userGroup"), "grp-1"),
        (("attempt", "gradeCriteria"), {"grades": None}),
    ],
)
def test_synap_odd_shapes_where_the_event_reads_nothing_are_accepted(path: tuple[str, ...], odd: Any) -> None:
    assert _event(Vendor.SYNAP, _synap(path, odd), event=RELEASED).status is Status.RELEASED


@MISSING
def test_synap_grade_left_out_publishes_no_grade(missing: Any) -> None:
    result = _event(Vendor.SYNAP, _synap(("attempt", "grade"), missing), event=RELEASED).result
    assert result is not None and result.grade is None and result.score == 72.5


@MISSING
def test_synap_user_left_out_publishes_no_candidate_but_keeps_the_attempt(missing: Any) -> None:
    event = _event(Vendor.SYNAP, _synap(("user",), missing), event=RELEASED)
    assert event.candidate is None and event.exam is not None and event.exam.key == "attempt:att-9001"


@MISSING
def test_synap_without_an_attempt_the_exam_and_user_name_the_exam(missing: Any) -> None:
    event = _event(Vendor.SYNAP, _synap(("attempt",), missing), event=RELEASED)
    assert event.exam is not None and event.exam.key == "exam:exam-12/user:user-77"
    assert event.exam.attempt_id is None and event.result is None


@pytest.mark.parametrize(
    "changes",
    [
        {"attempt": ABSENT, "exam": ABSENT},
        {"attempt": None, "user": None},
        {"attempt": {}, "exam": {}},
        {"attempt": {"id": ""}, "exam": {"id": "exam-12"}, "user": {"id": " "}},
    ],
)
@pytest.mark.parametrize("event", [RELEASED, "attempt.submitted", "exam.completed"])
def test_synap_status_event_without_identity_rejects(changes: dict[str, Any], event: str) -> None:
    body = _synap()
    for key, value in changes.items():
        body = _with(body, (key,), value)
    assert _rejection(Vendor.SYNAP, body, event=event) == (
        f"synap: {event} needs `attempt.id`, or `exam.id` and `user.id`, to name the exam"
    )


def test_synap_event_that_is_no_status_change_needs_no_exam() -> None:
    body = {"meta": {"timestamp": "2024-05-02T10:15:00Z"}, "user": {}, "attempt": None, "exam": {}}
    event = _event(Vendor.SYNAP, body, event="flag.planted")
    assert event.status is None and event.exam is None and event.candidate is None


# Testpress ----------------------------------------------------------------------------------------


def _testpress(state: str = "completed", **changes: Any) -> dict[str, Any]:
    body = samples.testpress(state)
    for key, value in changes.items():
        body = _with(body, (key,), value)
    return body


@pytest.mark.parametrize(
    ("sent", "percent"), [("0.00", 0.0), (0, 0.0), ("62.00", 62.0), (100, 100.0), ("100.00", 100.0)]
)
def test_testpress_percentage_inside_and_on_the_bounds(sent: Any, percent: float) -> None:
    result = _event(Vendor.TESTPRESS, _testpress(percentage=sent)).result
    assert result is not None and result.percent == percent


@pytest.mark.parametrize(
    ("sent", "shown"), [("-0.01", "-0.01"), (-1, "-1"), ("100.01", "100.01"), (250, "250"), ("nan", "nan")]
)
def test_testpress_percentage_outside_the_bounds_rejects(sent: Any, shown: str) -> None:
    reason = _rejection(Vendor.TESTPRESS, _testpress(percentage=sent))
    assert reason == f"testpress: `percentage` {shown} is outside 0–100"


@pytest.mark.parametrize(
    "field", ["correct_answers_count", "incorrect_answers_count", "unanswered_answers_count"]
)
@pytest.mark.parametrize("sent", [0, "0", 1, "250"])
def test_testpress_counts_not_negative_are_inside(field: str, sent: Any) -> None:
    assert _event(Vendor.TESTPRESS, _testpress(**{field: sent})).result is not None


@pytest.mark.parametrize(
    "field", ["correct_answers_count", "incorrect_answers_count", "unanswered_answers_count"]
)
@pytest.mark.parametrize("sent", [-1, "-1", -250])
def test_testpress_negative_counts_reject(field: str, sent: Any) -> None:
    assert (
        _rejection(Vendor.TESTPRESS, _testpress(**{field: sent}))
        == f"testpress: `{field}` {sent} is negative"
    )


def test_testpress_counts_are_checked_on_a_started_call_too() -> None:
    reason = _rejection(Vendor.TESTPRESS, _testpress("started", correct_answers_count=-1))
    assert reason == "testpress: `correct_answers_count` -1 is negative"


def test_testpress_score_may_be_negative_but_must_be_a_number() -> None:
    result = _event(Vendor.TESTPRESS, _testpress(score="-2.50")).result  # negative marking
    assert result is not None and result.score == -2.5
    assert (
        _rejection(Vendor.TESTPRESS, _testpress(score="inf"))
        == "testpress: `score` inf is not a finite number"
    )
    stats = [{"subject_name": "Quantitative", "score": "NaN"}]
    reason = _rejection(Vendor.TESTPRESS, _testpress(subject_stats=stats))
    assert reason == "testpress: `subject_stats[0].score` nan is not a finite number"


@pytest.mark.parametrize(
    ("field", "sent", "reason"),
    [
        (
            "completed_on",
            "2023-03-31T16:27:41",
            "testpress: `completed_on` '2023-03-31T16:27:41' has no time zone",
        ),
        (
            "attempt_start_time",
            "2023-03-31T10:55:54",
            "testpress: `attempt_start_time` '2023-03-31T10:55:54' has no",
        ),
        ("completed_on", "2023-02-29T16:27:41Z", "Invalid RFC3339 encoded datetime - at `$.completed_on`"),
        ("completed_on", "soon", "Invalid RFC3339 encoded datetime - at `$.completed_on`"),
    ],
)
def test_testpress_timestamps_must_be_instants(field: str, sent: str, reason: str) -> None:
    assert reason in _rejection(Vendor.TESTPRESS, _testpress(**{field: sent}))


@pytest.mark.parametrize(
    ("state", "status"), [("started", Status.STARTED), (" Completed ", Status.COMPLETED)]
)
def test_testpress_documented_states(state: str, status: Status) -> None:
    assert _event(Vendor.TESTPRESS, _testpress(attempt_state=state)).status is status


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("paused", "testpress: `attempt_state` 'paused' is not a documented state (started, completed)"),
        ("", "testpress: `attempt_state` '' is not a documented state (started, completed)"),
        (ABSENT, "missing required field `attempt_state`"),
        (None, "Expected `str`, got `null` - at `$.attempt_state`"),
    ],
)
def test_testpress_missing_or_unknown_state_rejects(state: Any, reason: str) -> None:
    assert reason in _rejection(Vendor.TESTPRESS, _testpress(attempt_state=state))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"attempt_id": ABSENT}, "missing required field `attempt_id`"),
        ({"attempt_id": None}, "Expected `int`, got `null` - at `$.attempt_id`"),
        ({"attempt_id": "x"}, "Expected `int`, got `str` - at `$.attempt_id`"),
        ({"hash": ABSENT}, "missing required field `hash`"),
    ],
)
def test_testpress_attempt_identity_is_required(changes: dict[str, Any], reason: str) -> None:
    assert reason in _rejection(Vendor.TESTPRESS, _testpress(**changes))


@pytest.mark.parametrize(
    ("field", "empty"),
    [("exam", {}), ("subject_stats", []), ("difficulty_level_stats", {}), ("accuracy", ""), ("speed", "")],
)
@pytest.mark.parametrize("missing", ["absent", "null", "empty"])
def test_testpress_what_the_event_does_not_need_may_be_left_out(field: str, empty: Any, missing: str) -> None:
    value = {"absent": ABSENT, "null": None, "empty": empty}[missing]
    event = _event(Vendor.TESTPRESS, _testpress(**{field: value}))
    assert event.status is Status.COMPLETED and event.exam is not None and event.exam.key == "attempt:4512"
    assert event.result is not None and event.result.percent == 62.0


@MISSING
def test_testpress_exam_details_left_out_leave_test_id_out(missing: Any) -> None:
    event = _event(Vendor.TESTPRESS, _testpress(exam=missing))
    assert event.exam is not None and event.exam.test_id is None and event.exam.title is None
    assert "exam_id" not in event.attributes


@pytest.mark.parametrize(
    "field",
    ["user_id", "key", "username", "email", "institute_attempt_id", "completed_on", "attempt_start_time"],
)
@pytest.mark.parametrize("missing", [ABSENT, None], ids=["absent", "null"])
def test_testpress_optional_fields_may_be_left_out(field: str, missing: Any) -> None:
    event = _event(Vendor.TESTPRESS, _testpress(**{field: missing}))
    assert event.status is Status.COMPLETED and event.exam is not None


def test_testpress_completed_without_completed_on_has_no_occurred_at() -> None:
    assert _event(Vendor.TESTPRESS, _testpress(completed_on=None)).occurred_at is None


# The samples every other test (and bench/, deploy/demo.py) builds on obey the rules themselves.


def test_the_shared_samples_are_valid_under_the_rules() -> None:
    for status in ("Complete", "Finished", "Invalidated", "Ready"):
        assert _event(Vendor.ITEP, samples.itep(status)).exam is not None
    assert _event(Vendor.INSPERA, samples.inspera()).status is Status.COMPLETED
    assert _event(Vendor.SYNAP, samples.synap_released(), event=RELEASED).status is Status.RELEASED
    for state in ("started", "completed"):
        assert _event(Vendor.TESTPRESS, samples.testpress(state)).status is not None
    keys = {"RESULTBUS_DEMO_TESTPRESS_KEY": "k"} | dict.fromkeys(
        ("RESULTBUS_DEMO_ITEP_PASSWORD", "RESULTBUS_DEMO_INSPERA_SECRET", "RESULTBUS_DEMO_SYNAP_PASSWORD"),
        "p",
    )
    for vendor, _source, body, headers in samples.demo_requests(keys, 7):
        event = "exam.resultsReleased" if vendor == "synap" else None
        env = samples.envelope(Vendor(vendor), body, content_type=headers["Content-Type"], event=event)
        assert normalize(env)
