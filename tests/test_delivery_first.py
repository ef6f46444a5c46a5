"""First attempts made by the fan-out itself (workers/delivery/attempts.py, `Attempts.first`), with
the real broker, database and loopback subscribers: no task for a quick one, a guard task for a
slow one, and a worker killed while posting leaves the attempt to that guard, never lost."""

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from admin import store as admin_store
from admin import wire
from common.broker import declare_results
from schemas.delivery import DELIVERY_FAILED_KEY, SUBSCRIPTION_DISABLED_KEY
from schemas.event import encode_event
from schemas.topology import Topology, result_routing_key
from subscribers.endpoint import normalize_endpoint
from subscribers.queues import delivery_queue_names
from subscribers.schedule import Schedule
from subscribers.signing import generate_secret
from tests.conftest import AMQP_URL, DATABASE_URL, scratch_queue_name
from tests.test_delivery import FAST, World, make_event, subscriber, world
from workers.delivery.attempts import HANDOFF, guard_wait
from workers.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts_consumed() -> float:
    return sum(
        counted("resultbus_messages_total", consumer="attempts", outcome=outcome)
        for outcome in ("acked", "retried", "dead-lettered")
    )


@pytest.fixture
async def w(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[World]:
    async with world(amqp_url, database_url, topology, db_schema) as running:
        yield running


async def test_a_quick_first_attempt_needs_no_task(w: World) -> None:
    async with subscriber() as sub:
        consumed = attempts_consumed()
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        [received] = await sub.wait("/hook", 1)
        assert received.headers["webhook-id"] == event.id
        row = await w.delivery(subscription_id, "succeeded")
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["succeeded"]
        await asyncio.sleep(0.3)
        assert attempts_consumed() == consumed  # nothing went through the attempts queue


async def test_a_slow_answer_is_handed_to_a_guard_and_made_once(w: World) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HANDOFF + 0.4)  # past the hand-off, within the 1 s timeout
        return web.Response()

    async with subscriber() as sub:
        sub.behaviours["/hook"] = slow
        handed_off = counted("resultbus_delivery_handed_off_total")
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        row = await w.delivery(subscription_id, "succeeded")
        assert counted("resultbus_delivery_handed_off_total") == handed_off + 1
        # The guard comes back after the attempt's timeout, finds it made, and does nothing more.
        await asyncio.sleep(guard_wait(FAST.timeout) + 0.5)
        assert len(sub.received["/hook"]) == 1
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["succeeded"]


async def test_a_handed_off_failure_is_followed_up_by_its_guard(w: World) -> None:
    # The handed-off attempt publishes nothing after recording itself: its retry, and in the end the
    # delivery.failed event, come from the guard's follow-up.
    async def slow_failure(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HANDOFF + 0.3)
        return web.Response(status=500)

    async with subscriber() as sub:
        sub.behaviours["/hook"] = slow_failure
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        row = await w.delivery(subscription_id, "failed", timeout=15)
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["retry", "retry", "failed"]
        assert len(sub.received["/hook"]) == FAST.schedule.attempts
        message = await w.operational_event()
        assert message.routing_key == DELIVERY_FAILED_KEY


async def test_a_redelivered_event_follows_up_a_first_attempt_recorded_by_a_fan_out_that_stopped(
    w: World,
) -> None:
    # A fan-out that stopped after recording the first attempt (a retry) and before publishing the
    # retry: the event comes back, and its delivery gets a guard that publishes the retry.
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        delivery_id = uuid.uuid4()
        await w.pool.execute(
            """INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, attempts,
                                       last_status, next_attempt_at)
               VALUES ($1, $2, $3, $4, 'pending', 1, 500, now())""",
            delivery_id,
            uuid.UUID(subscription_id),
            uuid.UUID(event.id),
            event.type,
        )
        await w.pool.execute(
            """INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms,
                                              outcome, next_attempt_at)
               VALUES ($1, 1, now(), 500, 1.0, 'retry', now())""",
            delivery_id,
        )
        await w.results.publish(
            aio_pika.Message(encode_event(event), message_id=event.id, headers={"x-delivery-count": 1}),
            routing_key=result_routing_key(event.vendor, event.type),
        )
        [received] = await sub.wait("/hook", 1)
        assert received.headers["webhook-id"] == event.id
        row = await w.delivery(subscription_id, "succeeded")
        assert [a["outcome"] for a in await w.attempts(row["id"])] == ["retry", "succeeded"]
        await asyncio.sleep(0.5)
        assert len(sub.received["/hook"]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _delivery_process(topology: Topology, schema: str, metrics: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_URL=AMQP_URL,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
        RESULTBUS_METRICS_PORT=str(metrics),
        RESULTBUS_DELIVERY_SCHEDULE="0,200ms,400ms",
        RESULTBUS_DELIVERY_JITTER="0",
        RESULTBUS_DELIVERY_PARK="50ms",
        RESULTBUS_DELIVERY_TIMEOUT="1s",
        RESULTBUS_ALLOW_PRIVATE_ENDPOINTS="1",
        RESULTBUS_LOG_LEVEL="warning",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "delivery", env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the delivery worker exited"
            try:
                async with http.get(f"http://127.0.0.1:{metrics}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_a_worker_killed_while_posting_leaves_the_attempt_to_its_guard(
    topology: Topology, db_schema: str
) -> None:
    # Killed after the hand-off, the worker has acked the event and recorded nothing: only the
    # guard task in its delay tier knows the delivery is owed. A second worker takes it from there.
    schedule = Schedule((0, 0.2, 0.4), jitter=0.0, park=0.05)
    for name in delivery_queue_names(topology, schedule):
        scratch_queue_name(topology, "tier", name=name)
    pool = await asyncpg.create_pool(DATABASE_URL, server_settings={"search_path": db_schema})
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        async with subscriber() as sub:
            calls = 0

            async def hang_once(request: web.Request) -> web.StreamResponse:
                nonlocal calls
                calls += 1
                if calls == 1:
                    await asyncio.sleep(30)  # the worker is killed meanwhile
                return web.Response()

            sub.behaviours["/hook"] = hang_once
            url = sub.url("/hook")
            async with pool.acquire() as conn:
                created = await admin_store.create_subscription(
                    conn, wire.SubscriptionCreate(url=url), normalize_endpoint(url), generate_secret()
                )
            first = await _delivery_process(topology, db_schema, _free_port())
            try:
                connection = await aio_pika.connect(AMQP_URL)
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    results = await declare_results(channel, topology)
                    event = make_event()
                    await results.publish(
                        aio_pika.Message(encode_event(event), message_id=event.id),
                        routing_key=result_routing_key(event.vendor, event.type),
                    )
                await sub.wait("/hook", 1)
                await asyncio.sleep(HANDOFF + 0.2)  # handed off: the event is acked, the guard published
                first.send_signal(signal.SIGKILL)
                await first.wait()
            finally:
                if first.returncode is None:
                    first.kill()
                    await first.wait()
            killed_at = time.monotonic()
            second = await _delivery_process(topology, db_schema, _free_port())
            try:
                got = await sub.wait("/hook", 2, timeout=guard_wait(1.0) + 10)
                assert got[1].at - killed_at < guard_wait(1.0) + 5
                async with asyncio.timeout(10):
                    while (
                        status := await pool.fetchval(
                            "SELECT status FROM deliveries WHERE subscription_id = $1", uuid.UUID(created.id)
                        )
                    ) != "succeeded":
                        await asyncio.sleep(0.05)
                outcomes = await pool.fetch("SELECT outcome FROM delivery_attempts ORDER BY attempt")
                assert [r["outcome"] for r in outcomes] == ["succeeded"]  # the killed one never recorded
                assert status == "succeeded" and calls == 2
            finally:
                second.send_signal(signal.SIGTERM)
                async with asyncio.timeout(15):
                    await second.wait()
    finally:
        await pool.close()


async def test_a_redelivered_event_publishes_the_disabled_event_a_stopped_fan_out_owed(w: World) -> None:
    # A first attempt got 410 and disabled the subscription, and the fan-out stopped before publishing
    # subscription.disabled: the subscription no longer matches, yet its delivery is followed up.
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        delivery_id = uuid.uuid4()
        await w.pool.execute(
            """INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, attempts, last_status)
               VALUES ($1, $2, $3, $4, 'failed', 1, 410)""",
            delivery_id,
            uuid.UUID(subscription_id),
            uuid.UUID(event.id),
            event.type,
        )
        await w.pool.execute(
            """INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, outcome)
               VALUES ($1, 1, now(), 410, 1.0, 'gone')""",
            delivery_id,
        )
        await w.pool.execute(
            "UPDATE subscriptions SET status = 'disabled' WHERE id = $1", uuid.UUID(subscription_id)
        )
        await w.results.publish(
            aio_pika.Message(encode_event(event), message_id=event.id, headers={"x-delivery-count": 1}),
            routing_key=result_routing_key(event.vendor, event.type),
        )
        message = await w.operational_event()
        assert message.routing_key == SUBSCRIPTION_DISABLED_KEY
        assert "/hook" not in sub.received  # followed up, not sent again


async def test_a_shutdown_waits_for_a_handed_off_attempt(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HANDOFF + 0.5)
        return web.Response()

    async with subscriber() as sub:
        sub.behaviours["/hook"] = slow
        async with world(amqp_url, database_url, topology, db_schema) as w:
            subscription_id, _ = await w.subscribe(sub.url("/hook"))
            await w.publish(make_event())
            await sub.wait("/hook", 1)
            await asyncio.sleep(HANDOFF + 0.1)  # handed off: its event is acked
            # Leaving the block shuts the worker down while the POST is still running.
        conn = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": db_schema})
        try:
            status = await conn.fetchval(
                "SELECT status FROM deliveries WHERE subscription_id = $1", uuid.UUID(subscription_id)
            )
        finally:
            await conn.close()
        assert status == "succeeded"  # the POST finished and was recorded, not cut off
