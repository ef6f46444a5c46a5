"""Sample webhook bodies, shaped after the vendors' documents in ../shared/seeds, with invented people."""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor

ITEP_COMPLETE: dict[str, Any] = {
    "OID": "cand-0042",
    "TestID": "3279B035APR",
    "Duration": "67.5",
    "TestDate": "6/10/2024",
    "TestMonth": "6",
    "TestDay": "10",
    "TestYear": "2024",
    "score_report_url": "https://reports.example.com/ScoreReport.php?p=abc",
    "Overall_Level": "4.5",
    "Overall_cefr": "C1",
    "Grammar_Level": "3.5",
    "Grammar_Score": "68",
    "Grammar_Percent": "72",
    "Grammar_cefr": "B2",
    "Listening_Level": "5.0",
    "Listening_Score": "87",
    "Listening_Percent": "86",
    "Listening_cefr": "C1",
    "Reading_Level": "6.0",
    "Reading_Score": "100",
    "Reading_Percent": "100",
    "Reading_cefr": "C2",
    "Writing_Level": "4.0",
    "Writing_Score": "77",
    "Writing_Percent": "67",
    "Writing_cefr": "B2",
    "Writing_Question_Count": 2,
    "Writing_Question_1": "",
    "Writing_Answer_1": "",
    "Writing_Question_2": "",
    "Writing_Answer_2": "",
    "Speaking_Level": "4.0",
    "Speaking_Score": "77",
    "Speaking_Percent": "67",
    "Speaking_cefr": "B2",
    "Status": "Complete",
}


def itep(status: str = "Complete", test_id: str = "3279B035APR", **changes: Any) -> dict[str, Any]:
    body = {**ITEP_COMPLETE, "Status": status, "TestID": test_id, **changes}
    if status.lower() not in {"complete", "completed"}:
        body = {k: v for k, v in body.items() if not k.endswith(("_Level", "_Score", "_Percent", "_cefr"))}
    return body


def itep_urlencoded(data: dict[str, Any]) -> tuple[bytes, str]:
    from urllib.parse import urlencode

    return urlencode({"data": json.dumps(data)}).encode(), "application/x-www-form-urlencoded"


def itep_multipart(data: dict[str, Any]) -> tuple[bytes, str]:
    boundary = "-----b27a39e6e6aef697"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="data"\r\n\r\n'
        f"{json.dumps(data)}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


def inspera(
    event: str = "confirm_final_grades",
    timestamp: str = "2021-06-29T18:16:06Z",
    context_id: int = 74379551,
    candidate_id: int | None = 5550101,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": event,
        "marketplaceId": 1357554,
        "contextObjectId": context_id,
        "contextObjectType": "ASSESSMENT_RUN",
        "timestamp": timestamp,
    }
    if candidate_id is not None:
        body["associatedObjectId"] = candidate_id
        body["associatedObjectType"] = "CANDIDATE"
    return body


def synap_released(
    attempt_id: str = "att-9001", timestamp: str = "2024-05-02T10:15:00.000Z"
) -> dict[str, Any]:
    grade = {"label": "Merit", "isPass": True, "minScore": 60}
    return {
        "user": {
            "id": "user-77",
            "name": "Ada Example",
            "email": "ada@example.com",
            "customAttributes": {"cohort": "2024A", "retake": False},
        },
        "portal": {"id": "portal-1"},
        "meta": {"timestamp": timestamp, "eventName": "exam.resultsReleased"},
        "attempt": {
            "score": 72.5,
            "scoreFrac": 0.725,
            "totalAnsweredCorrectly": 29,
            "grade": grade,
            "gradeCriteria": {"grades": [grade, {"label": "Fail", "isPass": False, "minScore": 0}]},
            "id": attempt_id,
            "isExam": True,
            "state": {
                "responseQuestionMap": [["q1", "r1"]],
                "isRevoked": False,
                "isStarted": True,
                "timeStarted": "2024-05-01T09:00:00.000Z",
                "timeCompleted": "2024-05-01T10:00:00.000Z",
                "timeSpentInMs": 3600000,
                "results": {"markingStatus": "marked", "pendingMarks": 0, "status": "complete"},
                "deferred": {"locked": False},
            },
            "marks": {"maxPoints": 100, "credits": 0, "penalties": 0, "points": 72.5},
            "totalQuestions": 40,
            "tags": {"exam": ["final"], "subject": ["maths"]},
            "totalAnswered": 38,
            "timeStarted": "2024-05-01T09:00:00.000Z",
            "timeCompleted": "2024-05-01T10:00:00.000Z",
            "timeSpentInMs": 3600000,
            "status": "completed",
            "examStatus": "released",
            "proctorStatus": None,
            "assignedModeratingMarkers": [{"id": "marker-2"}],
            "marker": {"id": "marker-1"},
            "audit": {
                "finalisedBy": "marker-1",
                "finalisedAt": "2024-05-02T09:00:00.000Z",
                "releasedBy": "admin-1",
                "releasedAt": "2024-05-02T10:15:00.000Z",
            },
            "resitCount": 0,
        },
        "test": {"id": "test-5", "title": "Final Maths"},
        "id": "result-31",
        "timeStarted": "2024-05-01T09:00:00.000Z",
        "timeCompleted": "2024-05-01T10:00:00.000Z",
        "timeSpentInMs": 3600000,
        "exam": {
            "id": "exam-12",
            "name": "Maths 2024",
            "attr": {"exam-weight": 1, "scoring-model": "points", "qualification_name": "Maths"},
            "resitCount": 0,
            "sourceTests": ["test-5"],
            "userGroup": {"id": "grp-1", "name": "Cohort A"},
        },
    }


TESTPRESS_PUBLIC_KEY = "DemoPub9Key42abc"
TESTPRESS_PRIVATE_KEY = "demoPrivKey7788"


def testpress(
    state: str = "completed",
    attempt_id: int = 4512,
    private_key: str = TESTPRESS_PRIVATE_KEY,
    public_key: str = TESTPRESS_PUBLIC_KEY,
) -> dict[str, Any]:
    completed = state == "completed"
    body: dict[str, Any] = {
        "username": "student",
        "accuracy": 72,
        "exam": {
            "id": 27,
            "title": "File type exam",
            "duration": None,
            "start_date": "2023-03-15T12:04:32+05:30",
            "end_date": None,
        },
        "subject_stats": (
            [{"subject_name": "Quantitative", "correct_answers_count": 31, "score": "87.50"}]
            if completed
            else []
        ),
        "email": "student@example.com",
        "partial_correct_answers_count": 0,
        "attempt_id": attempt_id,
        "attempt_state": state,
        "incorrect_answers_count": 12 if completed else 0,
        "difficulty_level_stats": {},
        "completed_on": "2023-03-31T16:27:41.151586+05:30" if completed else None,
        "unanswered_answers_count": 7 if completed else 0,
        "key": public_key,
        "attempt_start_time": "2023-03-31T10:55:54.968829Z",
        "user_id": 918,
        "percentage": "62.00" if completed else "0.00",
        "score": "87.50" if completed else "0.00",
        "speed": 0,
        "institute_attempt_id": None,
        "correct_answers_count": 31 if completed else 0,
    }
    body["hash"] = testpress_hash(body, private_key)
    return body


def testpress_hash(body: dict[str, Any], private_key: str) -> str:
    fields = [
        body["key"],
        body["attempt_id"],
        body["correct_answers_count"],
        private_key,
        body["incorrect_answers_count"],
        body["unanswered_answers_count"],
        body["percentage"],
        body["score"],
        body["user_id"],
    ]
    message = "|".join(str(f) for f in fields)
    return hmac.new(private_key.encode(), message.encode(), hashlib.sha512).hexdigest()


def inspera_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def envelope(
    vendor: Vendor,
    body: bytes,
    *,
    content_type: str = "application/json",
    source: str | None = None,
    event: str | None = None,
    received_at: datetime | None = None,
) -> RawEnvelope:
    return RawEnvelope(
        id=str(uuid.uuid4()),
        source=source or f"{vendor.value}-main",
        vendor=vendor,
        received_at=received_at or datetime.now(UTC),
        content_type=content_type,
        body=body,
        event=event,
    )


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def demo_requests(s: Mapping[str, str], n: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """One correctly signed call per vendor for deploy/sources.example.toml, given its secrets:
    (vendor, source id, body, headers). `n` makes the exam ids unique."""
    itep_body, itep_type = itep_multipart(itep("Complete", test_id=f"DEMO{n}B8AP"))
    inspera_body = as_json(inspera(context_id=n))
    synap_body = as_json(synap_released(attempt_id=f"att-demo-{n}"))
    testpress_body = testpress(attempt_id=n, private_key=s["RESULTBUS_DEMO_TESTPRESS_KEY"])
    return [
        (
            "itep",
            "itep-demo",
            itep_body,
            {"Content-Type": itep_type, "Authorization": basic("itep", s["RESULTBUS_DEMO_ITEP_PASSWORD"])},
        ),
        (
            "inspera",
            "inspera-demo",
            inspera_body,
            {
                "Content-Type": "application/json",
                "X-Inspera-Signature": inspera_signature(inspera_body, s["RESULTBUS_DEMO_INSPERA_SECRET"]),
            },
        ),
        (
            "synap",
            "synap-demo-results",
            synap_body,
            {
                "Content-Type": "application/json",
                "Authorization": basic("synap", s["RESULTBUS_DEMO_SYNAP_PASSWORD"]),
            },
        ),
        ("testpress", "testpress-demo", as_json(testpress_body), {"Content-Type": "application/json"}),
    ]
