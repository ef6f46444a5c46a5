"""Delivery workers against the real broker, database and HTTP subscribers on loopback; signatures
checked with the `standardwebhooks` package, an implementation independent of ours."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import msgspec
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from admin import store as admin_store
from schemas.delivery import DELIVERY_FAILED_KEY, SUBSCRIPTION_DISABLED_KEY
from schemas.topology import Topology, result_routing_key
from schemas.vendor import Vendor
from subscribers.signing import generate_secret
from tests.support.delivery import (
    FAST,
    World,
    make_event,
    subscriber,
    world,
)


@pytest.fixture
async def w(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[World]:
    async with world(amqp_url, database_url, topology, db_schema) as running:
        yield running


async def test_signed_delivery_verifies_with_standardwebhooks(w: World) -> None:
    async with subscriber() as sub:
        subscription_id, secret = await w.subscribe(sub.url("/hook"))
        event = make_event()
        body = await w.publish(event)
        (got,) = await sub.wait("/hook", 1)
        assert got.body == body
        assert got.headers["webhook-id"] == event.id
        assert Webhook(secret).verify(got.body, got.headers)["id"] == event.id
        row = await w.delivery(subscription_id, "succeeded")
        (attempt,) = await w.attempts(row["id"])
        assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"


async def test_filters_by_vendor_source_and_type(w: World) -> None:
    async with subscriber() as sub:
        await w.subscribe(sub.url("/all"))
        await w.subscribe(sub.url("/itep"), vendors=[Vendor.ITEP])
        await w.subscribe(sub.url("/src"), sources=["synap-x"])
        await w.subscribe(sub.url("/released"), event_types=["released"])
        await w.subscribe(sub.url("/vendor-events"), event_types=["event.*"])
        await w.publish(make_event(Vendor.ITEP, "completed", "itep-acme"))
        await w.publish(make_event(Vendor.SYNAP, "released", "synap-x"))
        await w.publish(make_event(Vendor.INSPERA, "event.qti_export_ready", "inspera-1"))
        await sub.wait("/all", 3)
        await asyncio.sleep(0.5)
        counts = {path: len(got) for path, got in sub.received.items()}
        assert counts == {"/all": 3, "/itep": 1, "/src": 1, "/released": 1, "/vendor-events": 1}


async def test_secret_rotation_signs_with_both_during_the_overlap(w: World) -> None:
    async with subscriber() as sub:
        subscription_id, old = await w.subscribe(sub.url("/hook"))
        new = generate_secret()
        async with w.pool.acquire() as conn:
            await admin_store.rotate_secret(conn, subscription_id, new, 3600)
        await w.publish(make_event())
        (got,) = await sub.wait("/hook", 1)
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(got.body, got.headers)
        Webhook(new).verify(got.body, got.headers)
        # Overlap over: only the new secret signs.
        async with w.pool.acquire() as conn:
            await admin_store.rotate_secret(conn, subscription_id, generate_secret(), 0)
        await w.publish(make_event())
        got = (await sub.wait("/hook", 2))[1]
        assert len(got.headers["webhook-signature"].split(" ")) == 1


async def test_retry_then_success(w: World) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=500 if calls < 3 else 200)

    async with subscriber() as sub:
        sub.behaviours["/hook"] = flaky
        subscription_id, secret = await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        got = await sub.wait("/hook", 3)
        assert len({r.headers["webhook-id"] for r in got}) == 1
        for r in got:
            Webhook(secret).verify(r.body, r.headers)
        assert got[1].at - got[0].at >= 0.15  # waited in the broker's delay tier
        row = await w.delivery(subscription_id, "succeeded")
        attempts = await w.attempts(row["id"])
        assert [a["outcome"] for a in attempts] == ["retry", "retry", "succeeded"]
        assert [a["status_code"] for a in attempts] == [500, 500, 200]
        assert attempts[0]["next_attempt_at"] is not None


async def test_retry_after_is_honoured(w: World) -> None:
    async def busy_once(request: web.Request) -> web.StreamResponse:
        if len(sub.received["/hook"]) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response()

    async with subscriber() as sub:
        sub.behaviours["/hook"] = busy_once
        await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        got = await sub.wait("/hook", 2)
        assert got[1].at - got[0].at >= 0.95  # not the schedule's 0.2 s


async def test_gone_disables_the_subscription(w: World) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = lambda request: _respond(410)
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        await w.delivery(subscription_id, "failed")
        status = await w.pool.fetchrow(
            "SELECT status, status_reason FROM subscriptions WHERE id = $1", uuid.UUID(subscription_id)
        )
        assert status["status"] == "disabled" and "410" in status["status_reason"]
        message = await w.operational_event()
        assert message.routing_key == SUBSCRIPTION_DISABLED_KEY
        await w.publish(make_event())
        await asyncio.sleep(0.5)
        assert len(sub.received["/hook"]) == 1  # never called again


async def test_exhaustion_marks_failed_and_publishes_an_operational_event(w: World) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = lambda request: _respond(500)
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        row = await w.delivery(subscription_id, "failed")
        assert row["attempts"] == 3
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["retry", "retry", "failed"]
        message = await w.operational_event()
        assert message.routing_key == DELIVERY_FAILED_KEY
        news = msgspec.json.decode(message.body)
        assert news["event_id"] == event.id and news["attempts"] == 3 and news["last_status"] == 500


async def test_a_sleeping_endpoint_does_not_delay_another(w: World) -> None:
    async def sleepy(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    async with subscriber() as sub:
        sub.behaviours["/slow"] = sleepy
        slow_id, _ = await w.subscribe(sub.url("/slow"))
        await w.subscribe(sub.url("/fast"), vendors=[Vendor.SYNAP])
        # A backlog for the slow endpoint first, then one event for the fast one.
        for _ in range(10):
            await w.publish(make_event(Vendor.ITEP))
        started = time.monotonic()
        await w.publish(make_event(Vendor.SYNAP, "released", "synap-x"))
        await sub.wait("/fast", 1, timeout=1.0)
        assert time.monotonic() - started < 1.0
        # The slow one timed out (1 s) and was never called more than per_endpoint at once; the rest
        # of its backlog moved on along the retry schedule unattempted instead of circling.
        await asyncio.sleep(1.2)
        attempts = await w.pool.fetch(
            "SELECT a.error FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = $1",
            uuid.UUID(slow_id),
        )
        errors = [a["error"] for a in attempts]
        assert "timeout" in errors
        assert all(e == "timeout" or e.startswith("not attempted: the endpoint") for e in errors), errors
        assert len(sub.received["/slow"]) <= 2 * 2  # two rounds of at most per_endpoint


async def test_private_addresses_refused_unless_allowed(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    strict = msgspec.structs.replace(FAST, allow_private=False)
    async with world(amqp_url, database_url, topology, db_schema, strict) as running, subscriber() as sub:
        subscription_id, _ = await running.subscribe(sub.url("/hook"))
        await running.publish(make_event())
        row = await running.delivery(subscription_id, "failed")
        attempts = await running.attempts(row["id"])
        assert attempts[0]["error"].startswith("refused:")
        assert "/hook" not in sub.received


async def test_redirects_are_not_followed(w: World) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = lambda request: _respond(302, {"Location": "/elsewhere"})
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        await w.delivery(subscription_id, "failed")
        assert "/elsewhere" not in sub.received


async def test_operational_events_are_not_delivered(w: World) -> None:
    async with subscriber() as sub:
        await w.subscribe(sub.url("/hook"))
        await w.results.publish(aio_pika.Message(b"{}"), routing_key=DELIVERY_FAILED_KEY)
        await asyncio.sleep(0.5)
        assert "/hook" not in sub.received


async def _respond(status: int, headers: dict[str, str] | None = None) -> web.StreamResponse:
    return web.Response(status=status, headers=headers)


async def test_an_event_published_again_does_not_start_a_second_retry_chain(w: World) -> None:
    # The router publishes an event again when its raw message comes back; a delivery already
    # retrying must keep its one schedule: three attempts in all, not six.
    async with subscriber() as sub:
        sub.behaviours["/hook"] = lambda request: _respond(500)
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        await sub.wait("/hook", 1)
        await w.publish(event)  # the same event again, while the delivery waits to retry
        row = await w.delivery(subscription_id, "failed")
        await asyncio.sleep(0.8)  # a second chain would still be posting now
        assert len(sub.received["/hook"]) == 3
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["retry", "retry", "failed"]


async def test_a_redelivered_event_recovers_a_delivery_whose_task_was_never_published(w: World) -> None:
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        body = await w.store(event)
        # A fan-out that died between creating the delivery and publishing its task.
        await w.pool.execute(
            "INSERT INTO deliveries (id, subscription_id, event_id, event_type) VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            uuid.UUID(subscription_id),
            uuid.UUID(event.id),
            event.type,
        )
        # The broker redelivers its event message (quorum queues count deliveries in a header).
        await w.results.publish(
            aio_pika.Message(body, message_id=event.id, headers={"x-delivery-count": 1}),
            routing_key=result_routing_key(event.vendor, event.type),
        )
        [received] = await sub.wait("/hook", 1)
        assert received.headers["webhook-id"] == event.id
        await w.delivery(subscription_id, "succeeded")
