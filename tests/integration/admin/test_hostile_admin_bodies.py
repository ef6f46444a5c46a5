"""Hostile bodies at the admin API, its console and the iTEP command queue (issue 19, item 1): the
admin app on a real listener over the real database and broker, every body decoder and every console
form given bytes nesting 20,000 levels deep (in an `Any` field too), that are not UTF-8, cut short,
or a form without its boundary. Each is a 4xx with a reason, never a 500; a command message is
answered and dead-lettered with its reason, never as unexpected; a stored webhook nested too deeply
still has its console page."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import msgspec
import pytest

from common.consumer import REASON, UNEXPECTED
from devkit import samples
from devkit.fake_itep import FakeItep
from schemas.itep_order import OrderReply
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.admin import AUTH, Admin, admin_api
from tests.support.console_world import BEARER, console_world
from tests.support.itep import API_KEY, an_order, world

# Under the admin's 64 KiB body limit, and twenty times deeper than msgspec follows.
DEEP_ARRAYS = b"[" * 20_000 + b"]" * 20_000
DEEP_OBJECTS = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


def _nested_in(body: dict[str, Any], field: str, deep: bytes) -> bytes:
    """`body` as JSON with `deep` spliced in as the value of `field`."""
    marker = "__deep__"
    text = json.dumps({**body, field: marker}).encode()
    return text.replace(json.dumps(marker).encode(), deep, 1)


def hostile_bodies(valid: dict[str, Any]) -> dict[str, bytes]:
    text = json.dumps(valid).encode()
    return {
        "deep arrays": DEEP_ARRAYS,
        "deep objects": DEEP_OBJECTS,
        # msgspec recurses into an unknown field to skip it, and into an `Any` field to keep it.
        "deep in an unknown field": _nested_in(valid, "unknown", DEEP_ARRAYS),
        "deep in a known field": _nested_in(valid, next(iter(valid)), DEEP_ARRAYS),
        "1,000 levels (msgspec's limit)": _nested_in(valid, next(iter(valid)), b"[" * 1000 + b"]" * 1000),
        "invalid UTF-8": text.replace(b'"', b'"\xff', 2),
        "a lone surrogate escaped": text.replace(b'"', b'"\\ud800', 2),
        "truncated": text[: len(text) // 2],
        "empty": b"",
        "BOM": b"\xef\xbb\xbf" + text,
        "NaN": b'{"x": NaN}',
        "huge number": b'{"x": ' + b"9" * 5000 + b"}",
        "not an object": b"[1, 2]",
    }


async def send(admin: Admin, method: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    headers = {**AUTH, "Content-Type": content_type}
    async with admin.http.request(method, admin.base + path, data=body, headers=headers) as response:
        return response.status, await response.read()


@pytest.fixture
async def admin(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[Admin]:
    # Private endpoints refused, as in production: the URL checks run too.
    async with admin_api(amqp_url, database_url, topology, db_schema, allow_private=False) as running:
        yield running


async def test_every_admin_body_decoder_answers_hostile_bytes_with_a_4xx_and_a_reason(admin: Admin) -> None:
    status, created = await admin.call("POST", "/v1/subscriptions", {"url": "http://93.184.216.34/hook"})
    assert status == 201, created
    sub = created["subscription"]["id"]
    status, order = await admin.call("POST", "/v1/itep/orders", an_order(email=None))
    assert status == 202, order
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/subscriptions", {"url": "http://93.184.216.34/hook", "event_types": ["completed"]}),
        ("PATCH", f"/v1/subscriptions/{sub}", {"description": "x"}),
        ("POST", f"/v1/subscriptions/{sub}/secret/rotate", {"overlap_seconds": 10}),
        ("POST", f"/v1/subscriptions/{sub}/replay", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", "/v1/itep/orders", an_order()),
        ("POST", f"/v1/itep/orders/{order['id']}/test-id", {"test_id": "ABC123"}),
        ("POST", "/v1/erasures", {"email": "ada@example.com", "requested_by": "ticket-1"}),
    ]
    for method, path, valid in routes:
        for label, body in hostile_bodies(valid).items():
            status, answer = await send(admin, method, path, body, "application/json")
            where = f"{method} {path}, {label}"
            assert 400 <= status < 500, f"{where}: {status} {answer[:200]!r}"
            reason = json.loads(answer)["error"]
            assert isinstance(reason, str) and reason, where
            if "deep" in label and status == 400:
                assert reason == "malformed JSON: nested too deeply to decode", where
    # The order whose `assigned_to` (an object of anything) nests deeper than msgspec follows: the
    # issue's own case, a 500 before.
    deep_order = _nested_in(an_order(), "assigned_to", b'{"a": ' + DEEP_ARRAYS + b"}")
    status, answer = await send(admin, "POST", "/v1/itep/orders", deep_order, "application/json")
    assert (status, json.loads(answer)) == (400, {"error": "malformed JSON: nested too deeply to decode"})
    # And it answers as before.
    status, _ = await admin.call("POST", "/v1/itep/orders", an_order())
    assert status == 202


BROKEN_FORMS = {
    "invalid UTF-8": (b"csrf=\xff\xfe&id=\xff", "application/x-www-form-urlencoded"),
    "an unknown charset": (b"id=1", "application/x-www-form-urlencoded; charset=no-such-charset"),
    "not its charset": (b"\xff=1", "application/x-www-form-urlencoded; charset=utf-16"),
    "multipart without a boundary": (b"id=1", "multipart/form-data"),
    "multipart with the wrong boundary": (b"garbage", "multipart/form-data; boundary=x"),
    "multipart, invalid UTF-8": (
        b'--x\r\nContent-Disposition: form-data; name="id"\r\n\r\n\xff\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
    ),
    "multipart, unknown transfer encoding": (
        b'--x\r\nContent-Disposition: form-data; name="id"\r\nContent-Transfer-Encoding: bogus\r\n\r\n1\r\n'
        b"--x--\r\n",
        "multipart/form-data; boundary=x",
    ),
    "multipart, nested": (
        b'--x\r\nContent-Type: multipart/mixed; boundary=y\r\nContent-Disposition: form-data; name="a"\r\n'
        b"\r\n--y\r\n\r\nz\r\n--y--\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
    ),
}


async def test_console_forms_that_cannot_be_parsed_are_a_400_page(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        console_world(amqp_url, database_url, topology, db_schema) as running,
        aiohttp.ClientSession() as http,
    ):
        sub = str(uuid.uuid4())
        paths = [
            "/console/login",
            "/console/rejected/replay",
            "/console/dead/replay",
            f"/console/subscriptions/{sub}/status",
            f"/console/subscriptions/{sub}/rotate",
            f"/console/subscriptions/{sub}/replay",
        ]
        for path in paths:
            for label, (body, content_type) in BROKEN_FORMS.items():
                headers = {**BEARER, "Content-Type": content_type}
                async with http.post(running.base + path, data=body, headers=headers) as response:
                    page = await response.text()
                    assert response.status == 400, f"{path}, {label}: {response.status} {page[:300]}"
                    assert "malformed form" in page, f"{path}, {label}"
        # A browser's session (no bearer token) is refused the same way, before its CSRF check.
        async with http.post(
            running.base + "/console/login",
            data=BROKEN_FORMS["invalid UTF-8"][0],
            headers={"Content-Type": BROKEN_FORMS["invalid UTF-8"][1]},
        ) as response:
            assert response.status == 400


async def test_a_stored_webhook_nested_too_deeply_still_has_its_console_page(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        console_world(amqp_url, database_url, topology, db_schema) as running,
        aiohttp.ClientSession() as http,
    ):
        body = samples.as_json(samples.synap_released()).replace(b"{", b'{"deep": ' + DEEP_ARRAYS + b", ", 1)
        envelope = samples.envelope(Vendor.SYNAP, body)
        await running.router.publish_raw(envelope)
        await running.router.raw_stored(1)
        async with http.get(f"{running.base}/console/webhooks/{envelope.id}", headers=BEARER) as response:
            page = await response.text()
            assert response.status == 200, page[:500]
            assert "nested too deeply to decode" in page  # the router's reason, shown
        async with http.get(running.base + "/console/rejected", headers=BEARER) as response:
            assert response.status == 200


async def test_an_order_message_that_cannot_be_decoded_is_answered_and_dead_lettered_with_its_reason(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with world(amqp_url, database_url, topology, db_schema, FakeItep(api_key=API_KEY)) as w:
        replies = await w.channel.declare_queue(exclusive=True)
        messages = {
            "deep": _nested_in(an_order(), "assigned_to", b'{"a": ' + DEEP_ARRAYS + b"}"),
            "utf8": json.dumps(an_order()).encode().replace(b"Mary", b"M\xffry", 1),
        }
        for correlation, body in messages.items():
            await w.channel.default_exchange.publish(
                aio_pika.Message(body, reply_to=replies.name, correlation_id=correlation),
                routing_key=topology.itep_orders.name,
            )
        answers: dict[str, OrderReply] = {}
        async with asyncio.timeout(10):
            while len(answers) < len(messages):
                message = await replies.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                assert message.correlation_id is not None
                answers[message.correlation_id] = msgspec.json.decode(message.body, type=OrderReply)
        assert answers["deep"].error == "not an order: nested too deeply to decode"
        assert answers["utf8"].error is not None and "UTF-8" in answers["utf8"].error
        dead = await w.channel.declare_queue(topology.itep_orders.dead, passive=True)
        reasons: dict[bytes, Any] = {}
        async with asyncio.timeout(10):
            while len(reasons) < len(messages):
                message = await dead.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                headers = message.headers or {}
                assert UNEXPECTED not in headers, headers  # a bad message, not a bug
                reasons[message.body] = headers[REASON]
        assert reasons[messages["deep"]] == "not an order: nested too deeply to decode"
        assert w.fake.calls == 0
