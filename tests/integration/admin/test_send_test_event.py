"""'Send a test event' to one subscription, from the admin API and the console, against a real
subscriber on loopback and the real database: signed exactly as a delivery is (verified with the
Standard Webhooks library), marked as a test, sent through the hardened client with its address
policy, the subscriber's status, latency and error answered, and nothing stored."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from schemas.event import decode_event
from schemas.topology import Topology
from tests.support.admin import AUTH, Admin, admin_api

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


@dataclass
class Receiver:
    server: TestServer
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        holder[0].got.append((request.path, dict(request.headers), await request.read()))
        if request.path == "/down":
            return web.Response(status=503, text="we are down for maintenance")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Receiver(server))
    try:
        yield holder[0]
    finally:
        await server.close()


@pytest.fixture
async def admin(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[Admin]:
    async with admin_api(amqp_url, database_url, topology, db_schema) as running:
        yield running


async def _subscribe(admin: Admin, url: str, **fields: Any) -> str:
    status, created = await admin.call("POST", "/v1/subscriptions", {"url": url, "secret": SECRET, **fields})
    assert status == 201, created
    return str(created["subscription"]["id"])


async def test_a_test_event_is_signed_as_a_delivery_and_the_answer_is_returned(admin: Admin) -> None:
    async with receiver() as sub:
        subscription_id = await _subscribe(admin, sub.url("/hook"), vendors=["synap"])
        status, sent = await admin.call("POST", f"/v1/subscriptions/{subscription_id}/test")
        assert status == 200, sent
        assert sent["ok"] is True and sent["status"] == 204 and sent["error"] is None
        assert sent["latency_ms"] > 0 and sent["url"] == sub.url("/hook")
        [(path, headers, body)] = sub.got
        assert path == "/hook"
        # Verified as a subscriber verifies a delivery: the same headers, the same signature.
        Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
        assert headers["webhook-id"] == sent["webhook_id"] and headers["User-Agent"] == "resultbus-webhooks/1"
        event = decode_event(body)  # a ResultEvent a consumer's own decoder reads
        assert event.id == sent["webhook_id"] and event.vendor.value == "synap"  # the subscription's vendor
        assert event.source == "resultbus-test" and event.attributes["resultbus_test"] is True
        assert event.candidate is not None and event.candidate.email == "test.candidate@example.com"
        assert event.type == "completed" and json.loads(body) == sent["event"]

        # Another type, and a subscriber that fails: its status and its words come back.
        down = await _subscribe(admin, sub.url("/down"))
        status, sent = await admin.call("POST", f"/v1/subscriptions/{down}/test", {"type": "invalidated"})
        assert status == 200 and sent["ok"] is False and sent["status"] == 503
        assert sent["error"] == "HTTP 503: we are down for maintenance"
        assert sent["event"]["type"] == "invalidated" and "result" not in sent["event"]

        # A test is not a delivery: nothing stored, and each one is a new webhook-id.
        assert await admin.pool.fetchval("SELECT count(*) FROM deliveries") == 0
        status, again = await admin.call("POST", f"/v1/subscriptions/{subscription_id}/test", {})
        assert again["webhook_id"] != sent["webhook_id"]

    # Nobody listening: no status, the reason.
    status, sent = await admin.call("POST", f"/v1/subscriptions/{subscription_id}/test")
    assert status == 200 and sent["status"] is None and sent["ok"] is False and sent["error"]
    assert (await admin.call("POST", f"/v1/subscriptions/{uuid.uuid4()}/test"))[0] == 404
    assert (await admin.call("POST", f"/v1/subscriptions/{subscription_id}/test", {"type": "done"}))[0] == 422


async def test_a_test_event_keeps_to_the_address_policy(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        receiver() as sub,
        admin_api(amqp_url, database_url, topology, db_schema, allow_private=False) as admin,
    ):
        # A row made while private endpoints were allowed (the API refuses one now).
        endpoint = await admin.pool.fetchval(
            "INSERT INTO endpoints (url) VALUES ($1) RETURNING id", sub.url("/hook")
        )
        subscription_id = str(uuid.uuid4())
        await admin.pool.execute(
            "INSERT INTO subscriptions (id, url, endpoint_id) VALUES ($1, $2, $3)",
            subscription_id,
            sub.url("/hook"),
            endpoint,
        )
        await admin.pool.execute(
            "INSERT INTO subscription_secrets (subscription_id, secret) VALUES ($1, $2)",
            subscription_id,
            SECRET,
        )
        status, sent = await admin.call("POST", f"/v1/subscriptions/{subscription_id}/test")
        assert status == 200 and sent["status"] is None and "forbidden address" in sent["error"], sent
        assert sub.got == []  # never reached


async def test_the_console_sends_one_and_shows_the_answer(admin: Admin) -> None:
    async with receiver() as sub:
        subscription_id = await _subscribe(admin, sub.url("/down"), description="school of examples")
        page = f"{admin.base.rstrip('/')}/console/subscriptions/{subscription_id}"
        async with admin.http.get(page, headers=AUTH) as response:
            html = await response.text()
        assert 'id="send-test"' in html
        async with admin.http.post(f"{page}/test", data={"type": "released"}, headers=AUTH) as response:
            assert response.status == 200
            html = await response.text()
        assert 'id="answer">HTTP 503<' in html and "we are down for maintenance" in html
        assert "ms</td>" in html and "resultbus-test" in html
        [(_, headers, body)] = sub.got
        Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
        assert decode_event(body).type == "released"
