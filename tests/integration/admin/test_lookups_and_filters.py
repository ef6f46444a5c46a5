"""Admin API look-ups and filters as a newcomer first tries them: a typo in an event type is refused
with the list, exams can be listed without a key, a date is a valid `since`, events come newest first."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from admin.event_filters import problem
from tests.support.admin import Admin


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("completed", None),
        ("event.qti_export_ready", None),
        ("event.some_new_vendor_event", None),  # vendor events are open-ended
        ("event.*", None),
        ("event.user.*", None),
        ("comp*", None),  # a prefix of `completed`
        ("*", None),
        ("complete", "unknown event type 'complete' (did you mean 'completed'?)"),
        ("event.", "unknown event type 'event.'"),
        ("xyz*", "'xyz*' matches no event type"),
        ("ev*nt.x", "'ev*nt.x': '*' only at the end"),
    ],
)
def test_event_type_filters(name: str, why: str | None) -> None:
    assert problem(name) == why


async def test_a_typo_in_event_types_is_refused_with_the_list(admin: Admin) -> None:
    url = "http://127.0.0.1:9/hook"
    status, body = await admin.call("POST", "/v1/subscriptions", {"url": url, "event_types": ["complete"]})
    assert status == 422
    assert body["error"].startswith("event_types: unknown event type 'complete' (did you mean 'completed'?)")
    assert "started, finished, in_review" in body["error"] and "event.*" in body["error"]
    assert (await admin.call("GET", "/v1/subscriptions"))[1] == {"subscriptions": []}

    status, created = await admin.call(
        "POST", "/v1/subscriptions", {"url": url, "event_types": ["completed", "event.*"]}
    )
    assert status == 201 and created["subscription"]["event_types"] == ["completed", "event.*"]
    path = f"/v1/subscriptions/{created['subscription']['id']}"
    status, body = await admin.call("PATCH", path, {"event_types": ["relased"]})
    assert status == 422 and "did you mean 'released'?" in body["error"]
    assert (await admin.call("GET", path))[1]["event_types"] == ["completed", "event.*"]


async def _exam(admin: Admin, vendor: str, key: str, status: str, updated: datetime) -> None:
    await admin.pool.execute(
        "INSERT INTO exams (vendor, exam_key, status, event_id, updated_at) VALUES ($1, $2, $3, $4, $5)",
        vendor, key, status, uuid.uuid4(), updated,
    )  # fmt: skip


async def test_exams_are_listed_in_pages_with_filters(admin: Admin) -> None:
    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    for i in range(7):
        await _exam(admin, "itep", f"IT{i}", "completed" if i % 2 else "started", start + timedelta(hours=i))
    await _exam(admin, "synap", "SY1", "completed", start + timedelta(hours=3))

    status, page = await admin.call("GET", "/v1/exams", vendor="itep", limit="3")
    assert status == 200 and [e["exam_key"] for e in page["exams"]] == ["IT6", "IT5", "IT4"]
    keys = [e["exam_key"] for e in page["exams"]]
    while page["next"] is not None:
        status, page = await admin.call("GET", "/v1/exams", vendor="itep", limit="3", cursor=page["next"])
        keys += [e["exam_key"] for e in page["exams"]]
    assert keys == [f"IT{i}" for i in reversed(range(7))]

    status, page = await admin.call("GET", "/v1/exams", status="completed", since="2026-11-20T12:00:00Z")
    assert [(e["vendor"], e["exam_key"]) for e in page["exams"]] == [
        ("itep", "IT5"), ("synap", "SY1"), ("itep", "IT3"),
    ]  # fmt: skip
    assert page["next"] is None and set(page["exams"][0]) >= {"status", "updated_at", "event_id"}

    assert (await admin.call("GET", "/v1/exams", key="IT1"))[0] == 422
    assert (await admin.call("GET", "/v1/exams", cursor="not-a-cursor"))[0] == 422
    status, exam = await admin.call("GET", "/v1/exams", vendor="itep", key="IT1")
    assert status == 200 and exam["exam_key"] == "IT1" and exam["history"] == []


async def test_since_takes_a_date(admin: Admin) -> None:
    await _exam(admin, "itep", "OLD", "completed", datetime(2026, 11, 21, 23, 59, tzinfo=UTC))
    await _exam(admin, "itep", "NEW", "completed", datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    status, page = await admin.call("GET", "/v1/exams", since="2026-11-22")
    assert status == 200 and [e["exam_key"] for e in page["exams"]] == ["NEW"]
    status, page = await admin.call("GET", "/v1/exams", until="2026-11-22")
    assert [e["exam_key"] for e in page["exams"]] == ["OLD"]
    for path in ("/v1/events", "/v1/rejected-webhooks"):
        assert (await admin.call("GET", path, since="2026-11-22"))[0] == 200, path
    status, body = await admin.call("GET", "/v1/events", since="22/11/2026")
    assert status == 422 and body["error"].startswith("since: expected a date (2026-11-22")


async def test_a_replay_body_takes_a_date_as_the_query_does(admin: Admin) -> None:
    status, created = await admin.call("POST", "/v1/subscriptions", {"url": "http://127.0.0.1:9/hook"})
    path = f"/v1/subscriptions/{created['subscription']['id']}/replay"
    for since in ("2026-11-22", "2026-11-22T08:00", "2026-11-22T08:00:00+01:00", "2026-11-22T08:00:00Z"):
        status, body = await admin.call("POST", path, {"since": since})
        assert (status, body) == (202, {"deliveries": []}), since
    status, body = await admin.call("POST", path, {"since": "22/11/2026"})
    assert status == 422 and body["error"].startswith("since: expected a date (2026-11-22")


def test_every_reader_of_an_operators_time_is_one_parser() -> None:
    from admin.console.pages import _time
    from common.times import parse_time
    from workers.operator_cli import parse_since

    for text in ("2026-11-22", "2026-11-22T08:00", "2026-11-22T08:00:00+01:00", "2026-11-22 08:00:00Z"):
        assert parse_since(text) == _time(text, "since") == parse_time(text), text
    assert parse_time("2026-11-22") == datetime(2026, 11, 22, tzinfo=UTC)
