"""The checker tests' world: a migrated schema, a fake clock and a probe on the results exchange."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import msgspec
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from admin import store as admin_store
from admin import wire
from common.broker import declare_results
from common.db import create_pool
from common.settings import WorkerSettings
from schemas.delivery import SUBSCRIPTION_UNSUBSCRIBED_KEY, SubscriptionUnsubscribed
from schemas.topology import Topology
from subscribers.endpoint import normalize_endpoint
from subscribers.signing import generate_secret
from tests.support.delivery import Subscriber
from tests.support.services import scratch_queue_name
from workers.checker.checker import Checker, RoundSummary
from workers.checker.run import open_checker
from workers.checker.settings import CheckerSettings
from workers.migrate import migrate

FAST = CheckerSettings(timeout=0.5, concurrency=8, poll=0.05, allow_private=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def answer(status: int) -> "web.Response":
    return web.Response(status=status, text=f"answered {status}")


@dataclass
class CheckWorld:
    settings: WorkerSettings
    pool: asyncpg.Pool
    clock: FakeClock
    events: aio_pika.abc.AbstractQueue

    async def subscribe(self, url: str) -> tuple[str, str]:
        secret = generate_secret()
        async with self.pool.acquire() as conn:
            created = await admin_store.create_subscription(
                conn, wire.SubscriptionCreate(url=url), normalize_endpoint(url), secret
            )
        return created.id, secret

    async def subscription(self, subscription_id: str) -> wire.Subscription:
        async with self.pool.acquire() as conn:
            found = await admin_store.get_subscription(conn, subscription_id)
        assert found is not None
        return found

    async def reenable(self, subscription_id: str) -> None:
        async with self.pool.acquire() as conn:
            await admin_store.update_subscription(
                conn, subscription_id, wire.SubscriptionUpdate(status="active"), None
            )

    async def endpoint(self, url: str) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM endpoints WHERE url = $1", normalize_endpoint(url))
        assert row is not None
        return row

    @contextlib.asynccontextmanager
    async def checker(self, config: CheckerSettings = FAST) -> AsyncIterator[Checker]:
        async with open_checker(self.settings, config, clock=self.clock) as checker:
            yield checker

    async def next_round(self, checker: Checker) -> RoundSummary:
        """Eight hours later: every endpoint checked last round is due again."""
        self.clock.advance(CheckerSettings().interval)
        return await checker.run_round()

    async def unsubscribed_events(self, count: int, timeout: float = 5.0) -> list[SubscriptionUnsubscribed]:
        found = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                message = await self.events.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                assert message.routing_key == SUBSCRIPTION_UNSUBSCRIBED_KEY
                found.append(msgspec.json.decode(message.body, type=SubscriptionUnsubscribed))
        assert await self.events.get(fail=False) is None, "more events than unsubscriptions"
        return found


@pytest.fixture
async def cw(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[CheckWorld]:
    settings = WorkerSettings(
        amqp_url=amqp_url, topology=topology, database_url=database_url, database_schema=db_schema
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        results = await declare_results(channel, topology)
        probe = await channel.declare_queue(scratch_queue_name(topology, "operational"), durable=False)
        await probe.bind(results, routing_key="resultbus.#")
        yield CheckWorld(settings, pool, FakeClock(), probe)
    finally:
        await connection.close()
        await pool.close()


def sample(metric: str) -> float:
    if metric == "unsubscribed":
        value = REGISTRY.get_sample_value("resultbus_checker_unsubscribed_total")
    else:
        value = REGISTRY.get_sample_value("resultbus_checker_checks_total", {"outcome": metric})
    return value or 0.0


def calls(sub: Subscriber, path: str) -> int:
    return len(sub.received.get(path, []))
