"""The delivery tests' world: a delivery worker in this process, the database migrated, loopback HTTP subscribers that record what they get, and events made and stored as a router does."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from admin import store as admin_store
from admin import wire
from common.broker import declare_results
from common.db import create_pool
from common.service import running
from common.settings import ProcessSettings, WorkerSettings
from schemas.event import ExamRef, ResultEvent, Status
from schemas.topology import Topology, result_routing_key
from schemas.vendor import Vendor
from subscribers.endpoint import normalize_endpoint
from subscribers.queues import delivery_queue_names
from subscribers.schedule import Schedule
from subscribers.signing import generate_secret
from vendors.base import Normalized
from workers.delivery.run import start_delivery
from workers.delivery.settings import DeliverySettings
from workers.migrate import migrate
from workers.router.store import RawRow, store_batch

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Subscriber:
    """A loopback HTTP server; each path answers with its behaviour and records what it got."""

    server: TestServer
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: dict[str, list[Received]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def wait(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received.get(path, [])) < count:
                await asyncio.sleep(0.01)
        return self.received[path]


@contextlib.asynccontextmanager
async def subscriber() -> AsyncIterator[Subscriber]:
    holder: list[Subscriber] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        sub = holder[0]
        body = await request.read()
        sub.received.setdefault(request.path, []).append(
            Received(time.monotonic(), dict(request.headers), body)
        )
        return await sub.behaviours.get(request.path, ok)(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Subscriber(server))
    try:
        yield holder[0]
    finally:
        await server.close()


@dataclass
class World:
    settings: WorkerSettings
    config: DeliverySettings
    pool: asyncpg.Pool
    results: aio_pika.abc.AbstractExchange
    operational: aio_pika.abc.AbstractQueue

    async def subscribe(self, url: str, secret: str | None = None, **filters: Any) -> tuple[str, str]:
        secret = secret or generate_secret()
        body = wire.SubscriptionCreate(url=url, **filters)
        async with self.pool.acquire() as conn:
            created = await admin_store.create_subscription(conn, body, normalize_endpoint(url), secret)
        return created.id, secret

    async def store(self, event: ResultEvent) -> bytes:
        """Stores the event as a router does (its raw webhook, the event in its exam's order); returns
        the body the router publishes. Storing it again changes nothing and returns it as stored."""
        raw = RawRow(
            id=event.webhook_id,
            source=event.source,
            vendor=event.vendor.value,
            received_at=event.received_at,
            content_type="application/json",
            body=b"{}",
        )
        async with self.pool.acquire() as conn:
            out = await store_batch(conn, [raw], [Normalized(event.id, event)], republish={event.id})
        (published,) = out
        return published.body

    async def publish(self, event: ResultEvent) -> bytes:
        """Stores the event and publishes it on the results exchange, as a router does."""
        body = await self.store(event)
        await self.results.publish(
            aio_pika.Message(body, message_id=event.id, content_type="application/json"),
            routing_key=result_routing_key(event.vendor, event.type),
        )
        return body

    async def delivery(self, subscription_id: str, status: str, timeout: float = 10.0) -> asyncpg.Record:
        async with asyncio.timeout(timeout):
            while True:
                row = await self.pool.fetchrow(
                    "SELECT * FROM deliveries WHERE subscription_id = $1 AND status = $2",
                    uuid.UUID(subscription_id),
                    status,
                )
                if row is not None:
                    return row
                await asyncio.sleep(0.02)

    async def attempts(self, delivery_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt", delivery_id
            )
        )

    async def operational_event(self, timeout: float = 10.0) -> aio_pika.abc.AbstractIncomingMessage:
        async with asyncio.timeout(timeout):
            while (message := await self.operational.get(fail=False)) is None:
                await asyncio.sleep(0.02)
        await message.ack()
        return message


def make_event(
    vendor: Vendor = Vendor.ITEP, type_: str = "completed", source: str = "itep-acme", exam: str | None = None
) -> ResultEvent:
    """An event of its own exam, unless `exam` names one (the events of one exam are delivered in order)."""
    status = Status(type_) if type_ in Status._value2member_map_ else None
    return ResultEvent(
        id=str(uuid.uuid4()),
        type=type_,
        vendor=vendor,
        source=source,
        webhook_id=str(uuid.uuid4()),
        vendor_event=type_,
        received_at=datetime.now(UTC),
        status=status,
        exam=ExamRef(key=exam or f"T-{uuid.uuid4().hex[:12]}"),
    )


FAST = DeliverySettings(
    schedule=Schedule((0, 0.2, 0.4), jitter=0.0, park=0.05),
    timeout=1.0,
    per_endpoint=2,
    allow_private=True,  # the subscribers are on loopback
)


@contextlib.asynccontextmanager
async def world(
    amqp_url: str,
    database_url: str,
    topology: Topology,
    schema: str,
    delivery: DeliverySettings = FAST,
    *,
    worker: bool = True,
) -> AsyncIterator[World]:
    """A delivery worker running in this process (unless not `worker`: the test runs its own), the
    database migrated, and a queue bound to the operational events."""
    settings = WorkerSettings(
        amqp_url=amqp_url,
        topology=topology,
        database_url=database_url,
        database_schema=schema,
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    connection = await aio_pika.connect(amqp_url)
    probe_name = f"{topology.prefix}.test.operational"
    try:
        channel = await connection.channel(publisher_confirms=True)
        results = await declare_results(channel, topology)
        probe = await channel.declare_queue(probe_name, durable=False)
        await probe.bind(results, routing_key="resultbus.#")
        if not worker:
            yield World(settings, delivery, pool, results, probe)
            return
        async with running(
            "delivery", (settings, delivery), start_delivery, ProcessSettings(shutdown_timeout=2.0)
        ):
            yield World(settings, delivery, pool, results, probe)
    finally:
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            for name in (*delivery_queue_names(topology, delivery.schedule), probe_name):
                await cleanup.queue_delete(name)
        await connection.close()
        await pool.close()
