"""The router under faults, on the real broker and database: a database cut (retry tiers, then
everything lands), exhausted retries (dead-letter queue with the reasons, then replay)."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from common.broker import declare_raw, declare_results
from common.db import create_pool
from common.replay import replay_dead_letters
from devkit import samples
from devkit.proxy import TcpProxy
from schemas.envelope import RawEnvelope, encode_envelope
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.pipeline import running_router
from workers.migrate import migrate
from workers.router.loop import Router
from workers.router.settings import RouterSettings


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    url = urlsplit(database_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    netloc = f"{url.username or 'postgres'}@127.0.0.1:{port}"
    yield proxy, urlunsplit(url._replace(netloc=netloc))
    await proxy.close()


async def run_cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


def envelopes(count: int) -> list[RawEnvelope]:
    return [
        samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(attempt_id=1000 + n)))
        for n in range(count)
    ]


async def test_database_cut_defers_then_everything_lands(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = pg_proxy
    sent = envelopes(30)
    async with running_router(
        amqp_url, proxied_url, topology, db_schema, quick_retries=(0.05,), retry_delays=(0.3, 0.6, 1.0, 2.0)
    ) as router:
        proxy.cut()
        for env in sent:
            await router.publish_raw(env)
        # While the database is away, the messages wait in the broker's delay tiers...
        await asyncio.sleep(1.0)
        assert not router.received
        proxy.restore()
        # ...and all land once it is back: each stored once, each event published.
        events = await router.events(30, timeout=30)
        assert {e.webhook_id for e in events} == {e.id for e in sent}
        assert await router.pool.fetchval("SELECT count(*) FROM raw_webhooks") == 30
        assert await router.pool.fetchval("SELECT count(*) FROM events") == 30
        dead = await router.channel.declare_queue(topology.dead_queue, passive=True)
        assert dead.declaration_result.message_count == 0


async def test_exhausted_retries_dead_letter_with_reasons_then_replay(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, pg_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, proxied_url = pg_proxy
    sent = envelopes(5)
    async with running_router(
        amqp_url, proxied_url, topology, db_schema, quick_retries=(), retry_delays=(0.1, 0.2)
    ) as router:
        proxy.cut()
        for env in sent:
            await router.publish_raw(env)
        dead = await router.channel.declare_queue(topology.dead_queue, passive=True)
        async with asyncio.timeout(15):
            while dead.declaration_result.message_count < 5:
                await asyncio.sleep(0.1)
                dead = await router.channel.declare_queue(topology.dead_queue, passive=True)
        message = await dead.get()
        headers = message.headers
        assert headers["x-resultbus-attempts"] == 3  # the first try and two delay tiers
        assert "x-resultbus-first-failed-at" in headers and "x-resultbus-last-failed-at" in headers
        assert headers["x-resultbus-routing-key"] == "testpress.testpress-main"
        assert headers["x-resultbus-reason"]
        await message.nack(requeue=True)

        proxy.restore()
        # What an operator runs: list them, then replay them.
        env = {**os.environ, "RESULTBUS_AMQP_URL": amqp_url, "RESULTBUS_AMQP_PREFIX": topology.prefix}
        listing = await run_cli(env, "inspect", "dead")
        assert listing.splitlines()[0] == f"5 messages in {topology.dead_queue}"
        assert sorted(line.split()[0] for line in listing.splitlines()[1:]) == sorted(e.id for e in sent)
        assert "attempts=3" in listing and "key=testpress.testpress-main" in listing
        assert (await run_cli(env, "replay", "dead")).strip() == "replayed 5 dead-lettered messages"
        events = await router.events(5, timeout=20)
        assert {e.webhook_id for e in events} == {e.id for e in sent}
        # A second replay finds nothing; the dead-letter queue is empty.
        assert await replay_dead_letters(router.channel, topology) == 0


async def test_broker_cut_under_the_router_then_it_consumes_again(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    url = urlsplit(amqp_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5672)
    port = await proxy.start()
    settings = RouterSettings(
        amqp_url=amqp_url, topology=topology, database_url=database_url, database_schema=db_schema
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    # The router's own robust connection goes through the proxy; the test's does not.
    robust = await aio_pika.connect_robust(f"amqp://guest:guest@127.0.0.1:{port}/?reconnect_interval=0.3")
    direct = await aio_pika.connect(amqp_url)
    stop = asyncio.Event()
    try:
        consuming = await robust.channel()
        await consuming.set_qos(prefetch_count=64)
        await declare_raw(consuming, topology)
        publishing = await robust.channel(publisher_confirms=True, on_return_raises=True)
        await declare_results(publishing, topology)
        router = Router(settings, pool, consuming, publishing)
        running = asyncio.create_task(router.run(stop))

        test_channel = await direct.channel(publisher_confirms=True)
        raw_exchange, _ = await declare_raw(test_channel, topology)

        async def send(envs: list[RawEnvelope]) -> None:
            for env in envs:
                await raw_exchange.publish(
                    aio_pika.Message(encode_envelope(env), message_id=env.id, delivery_mode=2),
                    routing_key="testpress.x",
                )

        async def stored() -> int:
            return int(await pool.fetchval("SELECT count(*) FROM raw_webhooks"))

        first, second = (
            envelopes(20),
            [
                samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(attempt_id=9000 + n)))
                for n in range(20)
            ],
        )
        await send(first)
        async with asyncio.timeout(10):
            while await stored() < 20:
                await asyncio.sleep(0.05)
        proxy.cut()
        await send(second)  # published while the router is cut off
        await asyncio.sleep(1.0)
        assert await stored() == 20
        proxy.restore()
        async with asyncio.timeout(20):
            while await stored() < 40:
                await asyncio.sleep(0.05)
        assert not running.done()
        ids = {r["id"] for r in await pool.fetch("SELECT id::text FROM raw_webhooks")}
        assert ids == {e.id for e in first + second}
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await robust.close()
        await direct.close()
        await proxy.close()
        await pool.close()


async def test_a_deferral_with_nowhere_to_go_is_not_lost(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, pg_proxy: tuple[TcpProxy, str]
) -> None:
    # The database is away and an operator deleted the delay tier: the deferral is returned by the
    # broker, so the message must go back, not be acked. The raw queue's delivery limit finally
    # sends it to the dead-letter queue, whence it can be replayed.
    proxy, proxied_url = pg_proxy
    [sent] = envelopes(1)
    async with running_router(
        amqp_url, proxied_url, topology, db_schema, quick_retries=(), retry_delays=(0.2,)
    ) as router:
        await router.channel.queue_delete(topology.raw.tier(200))
        proxy.cut()
        await router.publish_raw(sent)
        async with asyncio.timeout(30):
            while True:
                dead = await router.channel.declare_queue(topology.dead_queue, passive=True)
                if dead.declaration_result.message_count:
                    break
                await asyncio.sleep(0.1)
        message = await dead.get()
        assert message.message_id == sent.id
        await message.ack()
