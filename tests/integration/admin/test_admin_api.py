"""The admin API on a real listener, against the real database and broker: subscriptions, look-ups,
replay through running delivery workers, and the API checked against its own OpenAPI document."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from admin.settings import AdminSettings
from common.env import SettingError
from devkit.proxy import TcpProxy
from schemas.event import encode_event
from schemas.topology import Topology
from tests.support.admin import AUTH, TOKEN, Admin, admin_api
from tests.support.delivery import FAST, make_event, subscriber, world
from tests.support.paths import ROOT


async def test_token_required(admin: Admin) -> None:
    async with admin.http.get(admin.base + "/v1/subscriptions") as response:
        assert response.status == 401
        assert (await response.json()) == {"error": "missing or wrong bearer token"}
    async with admin.http.get(
        admin.base + "/v1/subscriptions", headers={"Authorization": "Bearer nope"}
    ) as response:
        assert response.status == 401
    # Bytes that are not UTF-8 in the header: refused like any wrong token, not a 500.
    async with admin.http.get(
        admin.base + "/v1/subscriptions", headers={"Authorization": "Bearer \udcff\udcfe"}
    ) as response:
        assert response.status == 401
    async with admin.http.get(admin.base + "/openapi.json") as response:
        assert response.status == 200
        assert (await response.json())["openapi"].startswith("3.1")


async def test_a_body_over_64_kib_is_a_413_as_documented(admin: Admin) -> None:
    assert "413 (a request body\nover 64 KiB)" in (ROOT / "docs" / "subscribers.md").read_text()
    body = {"url": "http://127.0.0.1:9/hook", "description": "x" * (64 * 1024)}
    status, answer = await admin.call("POST", "/v1/subscriptions", body)
    assert status == 413 and answer == {"error": "request entity too large"}
    status, _ = await admin.call("POST", "/v1/subscriptions", {**body, "description": "x" * 60_000})
    assert status != 413


async def test_what_the_openapi_document_calls_public_needs_no_token_and_nothing_else(admin: Admin) -> None:
    from admin.app import Handlers, routes

    # /readyz, which an orchestrator probes without the token, was documented public but refused.
    table = routes(Handlers(None, None, allow_private=False, ready=lambda: True))  # type: ignore[arg-type]
    assert {op.path for op, _ in table if op.public} == {"/healthz", "/readyz"}
    for op, _ in table:
        path = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), op.path)
        async with admin.http.request(op.method, admin.base + path) as response:
            assert (response.status != 401) == op.public, (op.method, op.path, response.status)


def test_settings_refuse_to_start_without_a_token() -> None:
    with pytest.raises(SettingError, match="RESULTBUS_ADMIN_TOKEN"):
        AdminSettings.from_env({})
    assert AdminSettings.from_env({"RESULTBUS_ADMIN_NO_AUTH": "1"}).token is None
    assert AdminSettings.from_env({"RESULTBUS_ADMIN_TOKEN": TOKEN}).token == TOKEN
    assert TOKEN not in repr(AdminSettings.from_env({"RESULTBUS_ADMIN_TOKEN": TOKEN}))


async def test_subscription_lifecycle(admin: Admin) -> None:
    status, created = await admin.call(
        "POST",
        "/v1/subscriptions",
        {
            "url": "HTTP://Example.com:80/hook",
            "vendors": ["itep"],
            "event_types": ["completed"],
            "description": "x",
        },
    )
    assert status == 201
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    sub = created["subscription"]
    assert sub["endpoint"] == "http://example.com/hook" and sub["status"] == "active"
    status, got = await admin.call("GET", f"/v1/subscriptions/{sub['id']}")
    assert status == 200 and secret not in str(got) and got["secrets"][0]["masked"].endswith("…")

    status, rotated = await admin.call(
        "POST", f"/v1/subscriptions/{sub['id']}/secret/rotate", {"overlap_seconds": 60}
    )
    assert status == 200 and rotated["secret"] != secret
    status, got = await admin.call("GET", f"/v1/subscriptions/{sub['id']}")
    assert len(got["secrets"]) == 2 and got["secrets"][1]["expires_at"] is not None

    status, updated = await admin.call(
        "PATCH", f"/v1/subscriptions/{sub['id']}", {"status": "disabled", "sources": ["a"]}
    )
    assert status == 200 and updated["status"] == "disabled" and updated["sources"] == ["a"]
    assert updated["status_reason"] == "disabled by an operator"
    status, listed = await admin.call("GET", "/v1/subscriptions", status="disabled")
    assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]
    status, _ = await admin.call("PATCH", f"/v1/subscriptions/{sub['id']}", {"status": "active"})
    assert status == 200

    assert (await admin.call("DELETE", f"/v1/subscriptions/{sub['id']}"))[0] == 204
    assert (await admin.call("GET", f"/v1/subscriptions/{sub['id']}"))[0] == 404
    assert (await admin.call("GET", "/v1/subscriptions/not-a-uuid"))[0] == 404


async def test_a_given_secret_is_kept_and_a_bad_one_refused(admin: Admin) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    status, created = await admin.call(
        "POST", "/v1/subscriptions", {"url": "https://example.com/h", "secret": secret}
    )
    assert status == 201 and created["secret"] == secret
    status, body = await admin.call(
        "POST", "/v1/subscriptions", {"url": "https://example.com/h", "secret": "whsec_AAAA"}
    )
    assert status == 422 and "secret" in body["error"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://user:pw@example.com/x",
        "not a url",
    ],
)
async def test_ssrf_refusals(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, url: str
) -> None:
    async with admin_api(amqp_url, database_url, topology, db_schema, allow_private=False) as strict:
        status, body = await strict.call("POST", "/v1/subscriptions", {"url": url})
        assert status == 422, body
        assert body["error"].startswith("url:") or body["error"].endswith("`$.url`")


async def test_validation_errors_are_json(admin: Admin) -> None:
    status, body = await admin.call(
        "POST", "/v1/subscriptions", {"url": "https://example.com", "vendors": ["acme"]}
    )
    assert status == 422 and "vendors" in body["error"]
    async with admin.http.post(admin.base + "/v1/subscriptions", data=b"{", headers=AUTH) as response:
        assert response.status == 400
    assert (await admin.call("GET", "/v1/events", limit="0"))[0] == 422


async def test_event_types(admin: Admin) -> None:
    status, body = await admin.call("GET", "/v1/event-types")
    assert status == 200
    types = {t["type"]: t["kind"] for t in body["event_types"]}
    assert types["completed"] == "status" and types["event.qti_export_ready"] == "vendor_event"
    assert types["event.*"] == "pattern"


async def _store_event(pool: asyncpg.Pool, exam_key: str = "T1", status: str = "completed") -> str:
    event = make_event()
    webhook = uuid.UUID(event.webhook_id)
    await pool.execute(
        "INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, outcome)"
        " VALUES ($1, 'itep-acme', 'itep', now(), 'application/json', '\\x7b7d', 'accepted')",
        webhook,
    )
    await pool.execute(
        "INSERT INTO events (id, vendor, natural_key, webhook_id, type, status, exam_key, received_at, applied, payload)"
        " VALUES ($1, 'itep', $2, $3, 'completed', $4, $5, now(), true, $6::jsonb)",
        uuid.UUID(event.id),
        event.id,
        webhook,
        status,
        exam_key,
        encode_event(event).decode(),
    )
    await pool.execute(
        "INSERT INTO exams (vendor, exam_key, status, event_id) VALUES ('itep', $1, $2, $3)"
        " ON CONFLICT (vendor, exam_key) DO UPDATE SET status = excluded.status, event_id = excluded.event_id",
        exam_key,
        status,
        uuid.UUID(event.id),
    )
    return event.id


async def test_lookups(admin: Admin) -> None:
    first = await _store_event(admin.pool)
    second = await _store_event(admin.pool)
    await admin.pool.execute(
        "INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, outcome, reason)"
        " VALUES ($1, 'synap-x', 'synap', now(), 'application/json', '\\xff7b', 'rejected', 'synap: bad')",
        uuid.uuid4(),
    )
    status, exam = await admin.call("GET", "/v1/exams", vendor="itep", key="T1")
    assert status == 200 and exam["status"] == "completed"
    assert [e["id"] for e in exam["history"]] == [first, second]
    assert exam["history"][0]["event"]["id"] == first
    assert (await admin.call("GET", "/v1/exams", vendor="itep", key="nope"))[0] == 404

    status, events = await admin.call("GET", "/v1/events", vendor="itep", exam_key="T1", limit="1")
    assert [e["id"] for e in events["events"]] == [second]  # the newest first, as deliveries
    status, events = await admin.call("GET", "/v1/events", exam_key="T1", limit="1", order="oldest")
    assert [e["id"] for e in events["events"]] == [first]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await admin.call("GET", "/v1/events", since=future))[1] == {"events": []}

    status, rejected = await admin.call("GET", "/v1/rejected-webhooks", source="synap-x")
    (row,) = rejected["rejected"]
    assert row["reason"] == "synap: bad" and row["size"] == 2 and row["body_preview"] == "\ufffd{"


async def test_replay_one_event_and_failed_deliveries(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        world(amqp_url, database_url, topology, db_schema, FAST) as running,
        admin_api(amqp_url, database_url, topology, db_schema) as api,
        subscriber() as sub,
    ):
        answers = iter([500, 500, 500])

        async def failing_then_ok(request: web.Request) -> web.StreamResponse:
            return web.Response(status=next(answers, 200))

        sub.behaviours["/hook"] = failing_then_ok
        status, created = await api.call("POST", "/v1/subscriptions", {"url": sub.url("/hook")})
        subscription_id, secret = created["subscription"]["id"], created["secret"]
        # Fails three times: the schedule of FAST is exhausted.
        body = await running.publish(make_event())
        await running.delivery(subscription_id, "failed")
        # One stored event replayed by id: a delivery is made for it.
        event_id = await _store_event(api.pool, exam_key="T9")
        status, replayed = await api.call(
            "POST", f"/v1/subscriptions/{subscription_id}/replay", {"event_id": event_id}
        )
        assert status == 202 and len(replayed["deliveries"]) == 1
        got = await sub.wait("/hook", 4)
        assert got[3].headers["webhook-id"] == event_id
        Webhook(secret).verify(got[3].body, got[3].headers)
        assert body
        # The subscriber has the POST; the worker records the attempt once it has the answer.
        await running.delivery(subscription_id, "succeeded")

        status, deliveries = await api.call("GET", f"/v1/subscriptions/{subscription_id}/deliveries")
        by_event = {d["event_id"]: d for d in deliveries["deliveries"]}
        assert by_event[event_id]["status"] == "succeeded"
        failed = [d for d in deliveries["deliveries"] if d["status"] == "failed"]
        assert len(failed) == 1 and [a["outcome"] for a in failed[0]["attempt_log"]] == [
            "retry",
            "retry",
            "failed",
        ]

        # A failed delivery of a stored event, replayed by time.
        answers = iter([500, 500, 500])
        stored = await _store_event(api.pool, exam_key="T10")
        await api.call("POST", f"/v1/subscriptions/{subscription_id}/replay", {"event_id": stored})
        await sub.wait("/hook", 7)
        await _wait_for(api.pool, stored, "failed")
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        status, replayed = await api.call(
            "POST", f"/v1/subscriptions/{subscription_id}/replay", {"since": since}
        )
        # Both failed deliveries: the first event's and this one's.
        assert status == 202 and len(replayed["deliveries"]) == 2
        await _wait_for(api.pool, stored, "succeeded")
        assert (await api.call("POST", f"/v1/subscriptions/{subscription_id}/replay", {}))[0] == 422


async def _wait_for(pool: asyncpg.Pool, event_id: str, status: str) -> None:
    async with asyncio.timeout(10):
        while (
            await pool.fetchval("SELECT status FROM deliveries WHERE event_id = $1", uuid.UUID(event_id))
            != status
        ):
            await asyncio.sleep(0.02)


async def test_replay_that_cannot_be_queued_leaves_the_delivery_failed_not_stuck(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    url = urlsplit(amqp_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5672)
    port = await proxy.start()
    try:
        async with admin_api(
            f"amqp://guest:guest@127.0.0.1:{port}/", database_url, topology, db_schema
        ) as api:
            status, created = await api.call("POST", "/v1/subscriptions", {"url": "http://127.0.0.1:9/hook"})
            event_id = await _store_event(api.pool, exam_key="Q1")
            proxy.cut()  # the broker is gone when the replay is asked for
            status, answer = await api.call(
                "POST", f"/v1/subscriptions/{created['subscription']['id']}/replay", {"event_id": event_id}
            )
            assert status == 503 and answer["error"]
            row = await api.pool.fetchrow(
                "SELECT status, last_error FROM deliveries WHERE event_id = $1", uuid.UUID(event_id)
            )
            assert (row["status"], row["last_error"]) == ("failed", "replay not queued: broker unavailable")
    finally:
        await proxy.close()
