"""The ingress app over real loopback HTTP against the real RabbitMQ: what is accepted lands on the
raw queue byte for byte; what is refused gets the right status, a JSON `error`, and is not enqueued."""

import base64
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from ingress.app import create_app, mark_draining
from ingress.errors import BrokerUnavailable
from ingress.publisher import Publisher
from ingress.settings import IngressSettings
from ingress.sources import parse_sources
from schemas.envelope import ENVELOPE_CONTENT_TYPE, RawEnvelope, decode_envelope
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.services import scratch_queue_name
from tests.support.signed_bodies import (
    DEMO_PRIVATE,
    INSPERA_EVENT,
    INSPERA_PING,
    TESTPRESS_COMPLETED,
    inspera_headers,
    signed_testpress_body,
)

SOURCES = """
[[source]]
id = "itep-acme"
vendor = "itep"
[source.auth]
kind = "basic"
username = "acme"
password_env = ["T_ITEP_PASSWORD", "T_ITEP_PASSWORD_NEXT"]

[[source]]
id = "itep-token"
vendor = "itep"
[source.auth]
kind = "header_token"
header = "X-Api-Token"
token_env = ["T_ITEP_TOKEN"]

[[source]]
id = "inspera-main"
vendor = "inspera"
[source.auth]
kind = "inspera_signature"
secret_env = ["T_INSPERA_SECRET"]

[[source]]
id = "synap-results"
vendor = "synap"
event = "exam.resultsReleased"
max_body_bytes = 4096
[source.auth]
kind = "basic"
username = "synap"
password_env = ["T_SYNAP_PASSWORD"]

[[source]]
id = "synap-walled"
vendor = "synap"
event = "attempt.completed"
allow_ips = ["10.0.0.0/8"]
[source.auth]
kind = "none"

[[source]]
id = "synap-local"
vendor = "synap"
event = "attempt.completed"
allow_ips = ["127.0.0.0/8", "::1/128"]
[source.auth]
kind = "none"

[[source]]
id = "testpress-main"
vendor = "testpress"
[source.auth]
kind = "testpress_hash"
private_key_env = ["T_TESTPRESS_KEY"]
"""
ENV = {
    "T_ITEP_PASSWORD": "itep-old-pass",
    "T_ITEP_PASSWORD_NEXT": "itep-new-pass",
    "T_ITEP_TOKEN": "itep-token-123",
    "T_INSPERA_SECRET": "inspera-secret",
    "T_SYNAP_PASSWORD": "synap-pass",
    "T_TESTPRESS_KEY": DEMO_PRIVATE,
}

# The seed's iTEP "Webhook Output Sample".
ITEP_RESULT = (
    '{ "OID": "", "TestID": "3279B035APR", "Duration": "67.5", "TestDate": "6/10/2024", "TestMonth": "6",'
    ' "TestDay": "10", "TestYear": "2024", "Overall_Level": "4.5", "Overall_cefr": "C1",'
    ' "Grammar_Level": "3.5", "Grammar_Score": "68", "Grammar_Percent": "72", "Grammar_cefr": "B2",'
    ' "Writing_Question_Count": 2, "Status": "Complete" }'
)
# The seed's Synap results-released shape, trimmed, with an invented candidate.
SYNAP_RELEASED = json.dumps(
    {
        "user": {"id": "u-1", "name": "Ada Example", "email": "ada@example.com", "customAttributes": {}},
        "portal": {"id": "p-1"},
        "meta": {"timestamp": "2024-05-02T10:00:00Z", "eventName": "exam.resultsReleased"},
        "attempt": {"id": "att-9", "score": 87.5, "grade": {"label": "Pass", "isPass": True, "minScore": 50}},
        "test": {"id": "t-1", "title": "Algebra"},
        "exam": {"id": "e-1", "name": "Algebra final"},
    }
).encode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def publisher(topology: Topology, amqp_url: str) -> AsyncIterator[Publisher]:
    publisher = Publisher(amqp_url, topology, confirm_timeout=2.0)
    await publisher.connect()
    yield publisher
    await publisher.close()


@pytest.fixture
async def app(topology: Topology, publisher: Publisher) -> web.Application:
    settings = IngressSettings.from_env(
        {"RESULTBUS_AMQP_PREFIX": topology.prefix, "RESULTBUS_RETRY_AFTER": "7"}
    )
    return create_app(settings, parse_sources(SOURCES, ENV), publisher)


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def raw_queue(topology: Topology, amqp_url: str, publisher: Publisher) -> AsyncIterator[AbstractQueue]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        yield await channel.get_queue(topology.raw_queue, ensure=False)


async def take(queue: AbstractQueue) -> AbstractIncomingMessage:
    # The 200 came after the broker's confirm, so the message is already there: no waiting.
    message = await queue.get(no_ack=True, fail=False)
    assert message is not None, "nothing was enqueued"
    return message


async def assert_empty(queue: AbstractQueue) -> None:
    assert await queue.get(no_ack=True, fail=False) is None


async def accepted(
    client: TestClient[web.Request, web.Application],
    queue: AbstractQueue,
    source: str,
    body: bytes | FormData | str,
    headers: dict[str, str],
) -> tuple[RawEnvelope, AbstractIncomingMessage, str]:
    response = await client.post(f"/hooks/{source}", data=body, headers=headers)
    assert response.status == 200, await response.text()
    sent_content_type = response.request_info.headers["Content-Type"]
    webhook_id = (await response.json())["id"]
    message = await take(queue)
    envelope = decode_envelope(message.body)
    assert message.message_id == webhook_id == envelope.id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == ENVELOPE_CONTENT_TYPE
    assert envelope.source == source
    assert message.routing_key == f"{envelope.vendor.value}.{source}"
    assert envelope.remote == "127.0.0.1"
    assert envelope.content_type == sent_content_type
    return envelope, message, sent_content_type


# --- accepted calls, one per vendor and shape ----------------------------------------------------


async def test_itep_urlencoded(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    body = urlencode({"data": ITEP_RESULT}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **basic("acme", "itep-old-pass")}
    envelope, _, _ = await accepted(client, raw_queue, "itep-acme", body, headers)
    assert envelope.body == body and envelope.vendor is Vendor.ITEP and envelope.event is None


async def test_itep_multipart_keeps_boundary_and_rotated_password(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    form = FormData({"data": ITEP_RESULT}, default_to_multipart=True)
    envelope, _, content_type = await accepted(
        client, raw_queue, "itep-acme", form, basic("acme", "itep-new-pass")
    )
    assert content_type.startswith("multipart/form-data; boundary=")
    assert ITEP_RESULT.encode() in envelope.body and b'name="data"' in envelope.body


async def test_itep_header_token(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    body = urlencode({"data": ITEP_RESULT}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Api-Token": "itep-token-123",
    }
    envelope, _, _ = await accepted(client, raw_queue, "itep-token", body, headers)
    assert envelope.body == body


async def test_inspera_signed_event(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    envelope, _, _ = await accepted(
        client, raw_queue, "inspera-main", INSPERA_EVENT, inspera_headers(INSPERA_EVENT)
    )
    assert envelope.body == INSPERA_EVENT and envelope.vendor is Vendor.INSPERA


@pytest.mark.parametrize("signed", [True, False])
async def test_inspera_verification_ping_is_answered_not_enqueued(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue, signed: bool
) -> None:
    headers = inspera_headers(INSPERA_PING) if signed else {}
    response = await client.post(
        "/hooks/inspera-main", data=INSPERA_PING, headers={**headers, "Content-Type": "text/plain"}
    )
    assert response.status == 200
    assert await response.json() == {"status": "verified"}
    await assert_empty(raw_queue)


async def test_synap_event_comes_from_the_source(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    envelope, _, _ = await accepted(
        client, raw_queue, "synap-results", SYNAP_RELEASED, {**JSON, **basic("synap", "synap-pass")}
    )
    assert envelope.body == SYNAP_RELEASED
    assert (envelope.vendor, envelope.event) == (Vendor.SYNAP, "exam.resultsReleased")


async def test_synap_without_auth_inside_its_allowlist(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    envelope, _, _ = await accepted(client, raw_queue, "synap-local", SYNAP_RELEASED, JSON)
    assert envelope.event == "attempt.completed"


async def test_testpress(client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue) -> None:
    body = signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE)
    envelope, _, _ = await accepted(
        client, raw_queue, "testpress-main", body, {"Content-Type": "application/json"}
    )
    assert envelope.body == body and envelope.vendor is Vendor.TESTPRESS


# --- refused calls -------------------------------------------------------------------------------

ITEP_FORM = urlencode({"data": ITEP_RESULT}).encode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TESTPRESS_OK = signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("POST", "/hooks/itep-acme", ITEP_FORM, FORM, 401),
        ("POST", "/hooks/itep-acme", ITEP_FORM, {**FORM, **basic("acme", "nope")}, 401),
        ("POST", "/hooks/itep-acme", ITEP_FORM, {**FORM, **basic("someone", "itep-old-pass")}, 401),
        ("POST", "/hooks/itep-token", ITEP_FORM, {**FORM, "X-Api-Token": "itep-token-124"}, 401),
        ("POST", "/hooks/inspera-main", INSPERA_EVENT, inspera_headers(INSPERA_EVENT, "wrong"), 401),
        ("POST", "/hooks/inspera-main", INSPERA_EVENT, JSON, 401),
        ("POST", "/hooks/synap-results", SYNAP_RELEASED, JSON, 401),
        ("POST", "/hooks/testpress-main", TESTPRESS_OK.replace(b'"user_id": 2', b'"user_id": 3'), JSON, 401),
        ("POST", "/hooks/testpress-main", b"{not json", JSON, 400),
        ("POST", "/hooks/testpress-main", b'{"key": "k"}', JSON, 400),
        (
            "POST",
            "/hooks/testpress-main",
            TESTPRESS_OK.replace(b'"score": "0.00"', b'"score": null'),
            JSON,
            400,
        ),
        ("POST", "/hooks/no-such-source", ITEP_FORM, FORM, 404),
        ("GET", "/no/such/path", None, {}, 404),
        ("GET", "/hooks/itep-acme", None, {}, 405),
        ("PUT", "/hooks/itep-acme", ITEP_FORM, {**FORM, **basic("acme", "itep-old-pass")}, 405),
        ("POST", "/healthz", b"", {}, 405),
        ("POST", "/hooks/itep-acme", ITEP_RESULT.encode(), {**JSON, **basic("acme", "itep-old-pass")}, 415),
        ("POST", "/hooks/itep-acme", ITEP_FORM, {"Content-Type": "", **basic("acme", "itep-old-pass")}, 415),
        (
            "POST",
            "/hooks/synap-results",
            SYNAP_RELEASED,
            {"Content-Type": "text/plain", **basic("synap", "synap-pass")},
            415,
        ),
        (
            "POST",
            "/hooks/testpress-main",
            TESTPRESS_OK,
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
        ),
        ("POST", "/hooks/synap-walled", SYNAP_RELEASED, JSON, 403),
    ],
)
async def test_refused_with_json_error_and_nothing_enqueued(
    client: TestClient[web.Request, web.Application],
    raw_queue: AbstractQueue,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    response = await client.request(method, path, data=body, headers=headers)
    assert response.status == status
    assert response.content_type == "application/json"
    payload = await response.json()
    assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"]
    if status == 405:
        assert response.headers["Allow"]
    # Nothing about the secret or the check that failed goes back to the caller.
    assert "pass" not in payload["error"] and "secret" not in payload["error"]
    await assert_empty(raw_queue)


async def test_too_large_by_content_length(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    body = b'{"pad": "' + b"x" * 5000 + b'"}'
    response = await client.post(
        "/hooks/synap-results", data=body, headers={**JSON, **basic("synap", "synap-pass")}
    )
    assert response.status == 413
    assert await response.json() == {"error": "payload too large"}
    await assert_empty(raw_queue)


async def test_too_large_chunked_without_content_length(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post(
        "/hooks/synap-results", data=chunks(), headers={**JSON, **basic("synap", "synap-pass")}
    )
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert response.status == 413
    await assert_empty(raw_queue)


async def test_chunked_within_limit_is_accepted(
    client: TestClient[web.Request, web.Application], raw_queue: AbstractQueue
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(SYNAP_RELEASED), 100):
            yield SYNAP_RELEASED[start : start + 100]

    response = await client.post(
        "/hooks/synap-results", data=chunks(), headers={**JSON, **basic("synap", "synap-pass")}
    )
    assert response.status == 200
    assert decode_envelope((await take(raw_queue)).body).body == SYNAP_RELEASED


# --- broker trouble, health, readiness -----------------------------------------------------------


async def test_broker_nack_is_503_with_retry_after(
    client: TestClient[web.Request, web.Application], topology: Topology, amqp_url: str
) -> None:
    # A second queue on the raw exchange that refuses everything: the broker nacks the publish.
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        full = await channel.declare_queue(
            scratch_queue_name(topology, "reject"),
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(topology.raw_exchange, routing_key="#")
        response = await client.post("/hooks/synap-local", data=SYNAP_RELEASED, headers=JSON)
    assert response.status == 503
    assert response.headers["Retry-After"] == "7"
    assert await response.json() == {"error": "temporarily unavailable"}


async def test_closed_broker_channel_is_503_and_not_ready(
    client: TestClient[web.Request, web.Application], publisher: Publisher
) -> None:
    assert (await client.get("/readyz")).status == 200
    await publisher.close()
    response = await client.post("/hooks/synap-local", data=SYNAP_RELEASED, headers=JSON)
    assert response.status == 503 and response.headers["Retry-After"] == "7"
    ready = await client.get("/readyz")
    assert ready.status == 503 and "error" in await ready.json()
    assert (await client.get("/healthz")).status == 200


async def test_health_and_readiness(
    client: TestClient[web.Request, web.Application], app: web.Application
) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status == 200 and await ready.json() == {"status": "ready"}
    mark_draining(app)
    draining = await client.get("/readyz")
    assert draining.status == 503 and await draining.json() == {"error": "shutting down"}


async def test_unroutable_publish_is_503(topology: Topology, amqp_url: str) -> None:
    # mandatory=True: with no queue bound, a confirm would mean nothing; it must be an error.
    publisher = Publisher(amqp_url, topology, confirm_timeout=2.0)
    await publisher.connect()
    try:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(topology.raw_queue)
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(b"x", "id-1", "synap.nowhere")
    finally:
        await publisher.close()


async def test_connect_gives_up_with_a_clear_message(topology: Topology) -> None:
    publisher = Publisher("amqp://guest:topsecret@127.0.0.1:1/", topology, confirm_timeout=1.0)
    with pytest.raises(BrokerUnavailable) as caught:
        await publisher.connect(retry_for=0)
    assert "cannot reach the broker at amqp://guest:***@127.0.0.1:1/" in caught.value.detail
    assert "topsecret" not in caught.value.detail
    assert not publisher.ready
