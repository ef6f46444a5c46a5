"""Gradebook destinations without I/O: score scales, the crosswalk resolver, identifiers, the records
and envelopes built for each vendor's sample (checked by the devkit servers' own validators, which
share no code with what built them), the plan, and configuration problems."""

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admin.crosswalk import CsvRefused, parse_csv
from devkit.caliper import Invalid, check_envelope
from devkit.oneroster import Refused, check_line_item, check_result
from gradebook import scales
from gradebook.config import CrosswalkConfig, IdentifierRule, decode_destination, problems
from gradebook.crosswalk import Lookup, Mapped, Row, Source, Unmapped, candidate_key, resolve
from gradebook.crosswalk_db import Wanted
from gradebook.oneroster import line_item_sourced_id, result_sourced_id
from gradebook.plan import CaliperWrite, OneRosterWrite, Skip, plan
from schemas.caliper import encode_envelope
from schemas.event import Candidate, Grade, OrderRef, Result, Section
from schemas.oneroster import encode, provider_message
from schemas.vendor import Vendor
from tests.support.gradebook_world import (
    SECRET_ENV,
    caliper_destination,
    oneroster_destination,
    sample_inspera,
    sample_itep,
    sample_synap,
    sample_testpress,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ONEROSTER = oneroster_destination(
    "https://sis.example.edu/ims/oneroster/gradebook/v1p2", "https://sis.example.edu/oauth/token"
)
CALIPER = caliper_destination("https://lrs.example.edu/caliper")
MAPPED = Lookup(row=Row(student="S-1001"))


def _json(value: msgspec.Struct) -> Any:
    return json.loads(encode(value))


# -- scales ------------------------------------------------------------------------------------------


def test_itep_level_and_cefr_read_the_overall_result_or_a_section() -> None:
    result = sample_itep().result
    assert scales.score(scales.ItepLevel(), result) == scales.Scored(score=4.5, value_min=0.0, value_max=6.0)
    assert scales.score(scales.ItepLevel(section="reading"), result).score == 6.0  # type: ignore[union-attr]
    cefr = scales.score(scales.Cefr(score_scale="scale-cefr"), result)
    assert isinstance(cefr, scales.Scored)
    assert (cefr.text_score, cefr.score, cefr.labels, cefr.score_scale) == (
        "C1",
        None,
        scales.CEFR_LEVELS,
        "scale-cefr",
    )
    assert scales.score(scales.Cefr(section="grammar"), result).text_score == "B2"  # type: ignore[union-attr]
    missing = scales.score(scales.ItepLevel(section="speaking"), Result(level=3.0))
    assert missing == scales.Unscorable("no iTEP level for section 'speaking' in the result")
    assert isinstance(scales.score(scales.Cefr(), Result(cefr="Z9")), scales.Unscorable)


def test_points_take_the_vendors_maximum_or_the_configured_one() -> None:
    testpress = sample_testpress().result
    assert scales.score(scales.Points(max_score=120), testpress) == scales.Scored(
        score=87.5, value_min=0.0, value_max=120.0
    )
    assert scales.score(scales.Points(), testpress) == scales.Unscorable(
        "no maximum score: the vendor sent none and the scale sets no max_score"
    )
    # Synap sends marks.maxPoints: it wins over the configured maximum.
    assert scales.score(scales.Points(max_score=10), sample_synap().result).value_max == 100.0  # type: ignore[union-attr]


def test_fraction_percent_and_grade_label() -> None:
    synap = sample_synap().result
    assert scales.score(scales.Fraction(), synap).score == pytest.approx(0.725)  # type: ignore[union-attr]
    assert scales.score(scales.Fraction(out_of=20), synap).score == pytest.approx(14.5)  # type: ignore[union-attr]
    assert scales.score(scales.Percent(), sample_testpress().result).score == 62.0  # type: ignore[union-attr]
    label = scales.score(scales.GradeLabel(labels=["Distinction", "Merit", "Pass", "Fail"]), synap)
    assert isinstance(label, scales.Scored) and label.text_score == "Merit"
    assert scales.score(scales.GradeLabel(labels=["A", "B"]), synap) == scales.Unscorable(
        "grade 'Merit' is not one of the scale's labels"
    )
    assert scales.score(scales.GradeLabel(), Result(grade=Grade(label="Pass"))).text_score == "Pass"  # type: ignore[union-attr]
    assert scales.score(scales.GradeLabel(), None) == scales.Unscorable("the event carries no result")


def test_scale_config_is_typed_and_refuses_what_it_does_not_know() -> None:
    decoded = decode_destination(
        json.dumps(
            {
                **json.loads(msgspec.json.encode(ONEROSTER)),
                "scales": {
                    "itep": {"kind": "cefr", "section": "listening"},
                    "synap": {"kind": "fraction", "out_of": 100},
                },
            }
        )
    )
    assert decoded.scales[Vendor.ITEP] == scales.Cefr(section="listening")
    assert decoded.scales[Vendor.SYNAP] == scales.Fraction(out_of=100)
    with pytest.raises(msgspec.ValidationError, match="kind"):
        decode_destination(
            msgspec.json.encode({**msgspec.to_builtins(ONEROSTER), "scales": {"itep": {"kind": "stars"}}})
        )
    with pytest.raises(msgspec.ValidationError, match="out_of"):
        decode_destination(
            msgspec.json.encode(
                {**msgspec.to_builtins(ONEROSTER), "scales": {"synap": {"kind": "fraction", "out_of": 0}}}
            )
        )


def test_problems_name_what_would_stop_a_destination() -> None:
    env = {SECRET_ENV: "x"}
    assert problems(ONEROSTER, env) == []
    bare = msgspec.structs.replace(ONEROSTER, scales={})
    assert problems(bare, env) == ["testpress: the points scale needs max_score (Testpress sends no maximum)"]
    assert problems(bare, env, vendors=[Vendor.ITEP]) == []  # a subscription without Testpress events
    wrong = msgspec.structs.replace(ONEROSTER, scales={Vendor.SYNAP: scales.ItepLevel()})
    assert "synap: itep_level reads iTEP levels, which synap does not send" in problems(wrong, env)
    assert problems(ONEROSTER, {}) == [f"environment variable {SECRET_ENV} is not set"]
    elsewhere = msgspec.structs.replace(ONEROSTER, base_url="https://sis.example.edu/api")
    assert problems(elsewhere, env) == [
        "base_url: the gradebook service root ends in /ims/oneroster/gradebook/v1p2"
    ]


# -- the crosswalk -----------------------------------------------------------------------------------


def test_sources_answer_in_order() -> None:
    ordered = msgspec.structs.replace(
        sample_itep(OID="7d1b0f0e-5c1a-4a53-9a55-0d2f6c1e0001"),
        order=OrderRef(id="7d1b0f0e-5c1a-4a53-9a55-0d2f6c1e0001", reference="r-1"),
    )
    config = CrosswalkConfig(rule=IdentifierRule(field="candidate_id"))
    # 1. the order's registration; its OID is our order id, never taken for a student.
    assert resolve(ordered, config, Lookup(order_student_number="S-1")) == Mapped(
        "S-1", Source.ORDER_REGISTRATION
    )
    no_number = resolve(ordered, CrosswalkConfig(), Lookup())
    assert isinstance(no_number, Unmapped)
    assert no_number.reason == (
        "no student for itep TestID '3279B035APR': its iTEP order has no trStudent_Number;"
        " no candidate.external_id; no crosswalk row for itep '3279B035APR'; no identifier rule"
    )
    assert no_number.candidate == "3279B035APR"
    # 2. the event's external id (an OID that is not one of ours).
    assert resolve(sample_itep(), CrosswalkConfig(), Lookup()) == Mapped("cand-0042", Source.EXTERNAL_ID)
    # 3. the table; 4. the rule.
    synap = sample_synap()
    assert resolve(synap, config, Lookup(row=Row(student="S-2"))) == Mapped("S-2", Source.TABLE)
    assert resolve(synap, config, Lookup()) == Mapped("user-77", Source.RULE)


def test_a_source_turned_off_is_not_asked() -> None:
    assert resolve(
        sample_itep(), CrosswalkConfig(external_id=False), Lookup(row=Row(student="S-3"))
    ) == Mapped("S-3", Source.TABLE)


def test_a_table_row_that_disagrees_holds_unless_it_overrides() -> None:
    event = sample_itep()  # external id cand-0042
    held = resolve(event, CrosswalkConfig(), Lookup(row=Row(student="S-9")))
    assert held == Unmapped(
        "sources disagree for itep TestID '3279B035APR': external_id says 'cand-0042', the crosswalk row"
        " says 'S-9' (mark the row override, or correct it)",
        "3279B035APR",
    )
    assert resolve(event, CrosswalkConfig(), Lookup(row=Row(student="S-9", override=True))) == Mapped(
        "S-9", Source.TABLE
    )
    # Agreement is no conflict: the earlier source answers.
    assert resolve(event, CrosswalkConfig(), Lookup(row=Row(student="cand-0042"))) == Mapped(
        "cand-0042", Source.EXTERNAL_ID
    )


def test_the_email_rule_takes_only_the_institutions_addresses() -> None:
    event = msgspec.structs.replace(
        sample_synap(), candidate=Candidate(id="u-1", email="Ada.Example@Uni.Example.edu")
    )
    rule = IdentifierRule(field="email", domain="uni.example.edu", local_part=True)
    assert resolve(event, CrosswalkConfig(rule=rule), Lookup()) == Mapped("ada.example", Source.RULE)
    keep_case = IdentifierRule(field="email", lowercase=False, prefix="mail:")
    assert resolve(event, CrosswalkConfig(rule=keep_case), Lookup()) == Mapped(
        "mail:Ada.Example@Uni.Example.edu", Source.RULE
    )
    personal = msgspec.structs.replace(event, candidate=Candidate(id="u-1", email="ada@mail.example.com"))
    held = resolve(personal, CrosswalkConfig(rule=rule), Lookup())
    assert isinstance(held, Unmapped) and "the identifier rule found no usable email" in held.reason


def test_unusable_identifiers_are_no_answer() -> None:
    for bad in ("", "   ", "x" * 256, "S-1\x00x", "S-\u202e1"):
        event = msgspec.structs.replace(sample_itep(), candidate=Candidate(external_id=bad))
        assert isinstance(resolve(event, CrosswalkConfig(), Lookup()), Unmapped), repr(bad)


def test_candidate_keys() -> None:
    assert candidate_key(sample_itep()) == "3279B035APR"
    assert candidate_key(sample_synap()) == "user-77"
    assert candidate_key(sample_testpress()) == "918"
    assert candidate_key(sample_inspera()) == "5550101"


# -- identifiers --------------------------------------------------------------------------------------


def test_sourced_ids_are_deterministic_and_distinct() -> None:
    first = plan(sample_synap(), ONEROSTER, MAPPED, now=NOW)
    again = plan(sample_synap(), ONEROSTER, MAPPED, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert isinstance(first, OneRosterWrite) and isinstance(again, OneRosterWrite)
    assert encode(first.result) == encode(again.result)  # the same bytes: a re-PUT changes nothing
    item = line_item_sourced_id(ONEROSTER, Vendor.SYNAP, "test-5")
    assert first.line_item.sourcedId == item
    assert first.result.sourcedId == result_sourced_id(item, Vendor.SYNAP, "attempt:att-9001")
    other = plan(sample_synap("att-9002"), ONEROSTER, MAPPED, now=NOW)
    assert isinstance(other, OneRosterWrite)
    assert other.result.sourcedId != first.result.sourcedId
    assert other.line_item.sourcedId == item  # one line item per product
    elsewhere = msgspec.structs.replace(ONEROSTER, class_sourced_id="class-other")
    assert line_item_sourced_id(elsewhere, Vendor.SYNAP, "test-5") != item


# -- the records, checked by the devkit provider's validators ---------------------------------------


@pytest.mark.parametrize(
    ("event", "score", "text_score", "maximum"),
    [
        (sample_itep(), 4.5, None, 6.0),
        (sample_synap(), 0.725, None, 1.0),
        (sample_testpress(), 87.5, None, 100.0),
    ],
    ids=["itep", "synap", "testpress"],
)
def test_every_vendors_result_is_a_valid_oneroster_record(
    event: Any, score: float, text_score: str | None, maximum: float
) -> None:
    written = plan(event, ONEROSTER, Lookup(row=Row(student="S-1001", override=True)), now=NOW)
    assert isinstance(written, OneRosterWrite)
    item, result = _json(written.line_item), _json(written.result)
    check_line_item(item)
    check_result(result)
    assert result["scoreStatus"] == "fully graded"
    assert result["score"] == score and result.get("textScore") == text_score
    assert result["student"] == {
        "href": "https://sis.example.edu/ims/oneroster/rostering/v1p2/users/S-1001",
        "sourcedId": "S-1001",
        "type": "user",
    }
    assert result["lineItem"]["sourcedId"] == item["sourcedId"] and result["status"] == "active"
    assert item["resultValueMin"] == 0.0 and item["resultValueMax"] == maximum
    assert item["school"]["type"] == "org" and item["class"]["sourcedId"] == "class-esl-101"


def test_itep_result_carries_the_report_url_and_the_test_date() -> None:
    written = plan(sample_itep(), ONEROSTER, Lookup(row=Row(student="S-1", override=True)), now=NOW)
    assert isinstance(written, OneRosterWrite)
    result = _json(written.result)
    assert result["comment"] == "iTEP score report: https://reports.example.com/ScoreReport.php?p=abc"
    assert result["scoreDate"] == "2024-06-10"  # TestDate, not the day the webhook came
    assert written.line_item.title == "iTEP"


def test_a_label_scale_writes_a_text_score_and_its_score_scale() -> None:
    destination = msgspec.structs.replace(
        ONEROSTER,
        scales={Vendor.SYNAP: scales.GradeLabel(labels=["Merit", "Pass"], score_scale="scale-grades")},
    )
    written = plan(sample_synap(), destination, MAPPED, now=NOW)
    assert isinstance(written, OneRosterWrite)
    result, item = _json(written.result), _json(written.line_item)
    check_result(result)
    check_line_item(item)
    assert (result["textScore"], "score" in result) == ("Merit", False)
    assert result["scoreScale"]["sourcedId"] == item["scoreScale"]["sourcedId"] == "scale-grades"
    assert "resultValueMax" not in item


def test_an_invalidation_updates_the_same_result_without_a_score() -> None:
    graded = plan(sample_itep(), ONEROSTER, Lookup(row=Row(student="S-1", override=True)), now=NOW)
    withdrawn = plan(
        sample_itep("Invalidated"), ONEROSTER, Lookup(row=Row(student="S-1", override=True)), now=NOW
    )
    assert isinstance(graded, OneRosterWrite) and isinstance(withdrawn, OneRosterWrite)
    assert withdrawn.result.sourcedId == graded.result.sourcedId
    result = _json(withdrawn.result)
    check_result(result)
    assert result["scoreStatus"] == "not submitted" and "score" not in result
    assert result["comment"].startswith("iTEP invalidated this exam on ")
    exempt = plan(
        sample_itep("Reset"),
        msgspec.structs.replace(ONEROSTER, withdrawn_status="exempt"),
        Lookup(row=Row(student="S-1", override=True)),
        now=NOW,
    )
    assert isinstance(exempt, OneRosterWrite) and exempt.result.scoreStatus == "exempt"


def test_what_is_skipped_and_what_is_held() -> None:
    assert plan(sample_testpress("started"), ONEROSTER, MAPPED, now=NOW) == Skip(
        "started: a OneRoster gradebook receives graded, withdrawn exams only"
    )
    # Inspera's webhooks carry no grade: nothing to write, and so nothing to hold.
    assert plan(sample_inspera(), ONEROSTER, Lookup(), now=NOW) == Skip(
        "completed: the event carries no result"
    )
    finished = sample_itep("Finished")
    assert isinstance(plan(finished, ONEROSTER, MAPPED, now=NOW), Skip)
    submitted = plan(
        finished,
        msgspec.structs.replace(ONEROSTER, write_submitted=True),
        Lookup(row=Row(student="S-1", override=True)),
        now=NOW,
    )
    assert isinstance(submitted, OneRosterWrite) and submitted.result.scoreStatus == "submitted"
    check_result(_json(submitted.result))
    unmapped = plan(sample_synap(), ONEROSTER, Lookup(), now=NOW)
    assert isinstance(unmapped, Unmapped) and unmapped.candidate == "user-77"


# -- Caliper --------------------------------------------------------------------------------------------


def test_a_graded_exam_is_a_valid_caliper_grade_event() -> None:
    written = plan(sample_testpress(), CALIPER, Lookup(row=Row(student="S 7")), now=NOW)
    assert isinstance(written, CaliperWrite)
    envelope = json.loads(encode_envelope(written.envelope))
    (event,) = check_envelope(envelope)
    assert envelope["dataVersion"] == "http://purl.imsglobal.org/ctx/caliper/v1p2"
    assert (event["type"], event["action"], event["profile"]) == ("GradeEvent", "Graded", "GradingProfile")
    assert event["object"]["assignee"]["id"] == "https://sis.example.edu/users/S%207"
    assert (event["generated"]["scoreGiven"], event["generated"]["maxScore"]) == (87.5, 100.0)
    assert event["generated"]["attempt"] == event["object"]["id"]
    again = plan(sample_testpress(), CALIPER, Lookup(row=Row(student="S 7")), now=NOW)
    assert isinstance(again, CaliperWrite) and again.envelope.data[0].id == event["id"]  # same event id


def test_a_finished_exam_is_a_submitted_assessment_event_and_labels_travel_in_extensions() -> None:
    finished = plan(sample_itep("Finished"), CALIPER, Lookup(row=Row(student="S-1", override=True)), now=NOW)
    assert isinstance(finished, CaliperWrite)
    (event,) = check_envelope(json.loads(encode_envelope(finished.envelope)))
    assert (event["type"], event["action"], event["actor"]["type"]) == (
        "AssessmentEvent",
        "Submitted",
        "Person",
    )
    cefr = msgspec.structs.replace(CALIPER, scales={Vendor.ITEP: scales.Cefr()})
    graded = plan(sample_itep(), cefr, Lookup(row=Row(student="S-1", override=True)), now=NOW)
    assert isinstance(graded, CaliperWrite)
    (event,) = check_envelope(json.loads(encode_envelope(graded.envelope)))
    assert event["generated"]["extensions"] == {"textScore": "C1"} and "scoreGiven" not in event["generated"]
    assert plan(sample_itep("Invalidated"), CALIPER, MAPPED, now=NOW) == Skip(
        "invalidated: Caliper receives graded and submitted exams only"
    )


def test_the_devkit_validators_refuse_what_the_standards_do_not_allow() -> None:
    """The validators the records are checked by are not a rubber stamp."""
    written = plan(sample_synap(), ONEROSTER, MAPPED, now=NOW)
    assert isinstance(written, OneRosterWrite)
    result = _json(written.result)
    for broken, why in [
        ({**result, "scoreStatus": "fullyGraded"}, "scoreStatus"),
        ({**result, "scoreDate": "2024-05-02T10:15:00Z"}, "scoreDate"),
        ({**result, "student": {**result["student"], "type": "student"}}, "student.type"),
        ({**result, "grade": "A"}, "unknown field"),
        ({k: v for k, v in result.items() if k != "lineItem"}, "lineItem"),
    ]:
        with pytest.raises(Refused, match=why):
            check_result(broken)
    graded = plan(sample_synap(), CALIPER, MAPPED, now=NOW)
    assert isinstance(graded, CaliperWrite)
    envelope = json.loads(encode_envelope(graded.envelope))
    with pytest.raises(Invalid, match="action"):
        check_envelope({**envelope, "data": [{**envelope["data"][0], "action": "Submitted"}]})
    with pytest.raises(Invalid, match="expected http"):
        check_envelope({**envelope, "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1"})


def test_provider_messages_are_read_from_status_info() -> None:
    body = json.dumps(
        {
            "imsx_codeMajor": "failure",
            "imsx_severity": "error",
            "imsx_description": "student S-9 is not enrolled in class-1",
            "imsx_CodeMinor": {
                "imsx_codeMinorField": [
                    {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": "invaliddata"}
                ]
            },
        }
    ).encode()
    assert provider_message(body) == "student S-9 is not enrolled in class-1 (invaliddata)"
    both = json.dumps(
        {
            "imsx_statusInfoSet": [
                {"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "a"},
                {"imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "b"},
            ]
        }
    ).encode()
    assert provider_message(both) == "a; b"
    assert provider_message(b"<html>oops</html>") is None


def test_sections_are_matched_case_blind() -> None:
    result = Result(sections=[Section(name="reading", level=5.0)])
    assert scales.score(scales.ItepLevel(section="Reading"), result).score == 5.0  # type: ignore[union-attr]


# -- the CSV import's parser ----------------------------------------------------------------------


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=400))
@settings(max_examples=300, deadline=None)
def test_any_text_is_parsed_or_refused_line_by_line(text: str) -> None:
    for body in (text, "vendor,candidate,student\n" + text):
        try:
            parsed = parse_csv(body)
        except CsvRefused as refused:
            assert refused.errors and all(e.line >= 1 and e.error for e in refused.errors)
        else:
            assert all(isinstance(w, Wanted) and w.student.strip() == w.student for _, w in parsed)


def test_csv_lines_are_numbered_as_a_spreadsheet_shows_them() -> None:
    # A quoted field spanning two lines: the next row's number is the file's line, not the row's.
    text = 'vendor,candidate,student,note\nitep,T-1,S-1,"two\nlines"\nmoodle,T-2,S-2,\n'
    with pytest.raises(CsvRefused) as refused:
        parse_csv(text)
    assert [e.line for e in refused.value.errors] == [4]
