"""Routers as real processes over a world of the test's own: its database, its broker prefix, a probe on the results."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import asyncpg

from common.broker import declare_raw, declare_results
from devkit import samples
from schemas.envelope import ENVELOPE_CONTENT_TYPE, RawEnvelope, encode_envelope
from schemas.event import decode_event
from schemas.topology import Topology, raw_routing_key
from schemas.vendor import Vendor
from tests.support.paths import ROOT
from tests.support.services import scratch_queue_name
from workers.migrate import migrate


class World:
    def __init__(self, amqp_url: str, database_url: str, topology: Topology, schema: str) -> None:
        self.amqp_url, self.database_url, self.topology, self.schema = (
            amqp_url,
            database_url,
            topology,
            schema,
        )
        self.env = {
            **os.environ,
            "RESULTBUS_AMQP_URL": amqp_url,
            "RESULTBUS_AMQP_PREFIX": topology.prefix,
            "RESULTBUS_DATABASE_URL": database_url,
            "RESULTBUS_DATABASE_SCHEMA": schema,
            "RESULTBUS_LOG_LEVEL": "WARNING",
        }
        self.channel: aio_pika.abc.AbstractChannel
        self.results: aio_pika.abc.AbstractQueue
        self.db: asyncpg.Connection

    async def start_router(self, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers", "router", env={**self.env, **env}, cwd=ROOT
        )

    async def fill(self, envelopes: list[RawEnvelope]) -> None:
        exchange, _ = await declare_raw(self.channel, self.topology)
        for env in envelopes:
            await exchange.publish(
                aio_pika.Message(
                    encode_envelope(env),
                    message_id=env.id,
                    content_type=ENVELOPE_CONTENT_TYPE,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=raw_routing_key(env.vendor, env.source),
            )

    async def stored(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM raw_webhooks"))

    async def until_stored(self, count: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while await self.stored() < count:
                await asyncio.sleep(0.05)

    async def published_ids(self) -> list[str]:
        ids = []
        while (message := await self.results.get(no_ack=True, fail=False)) is not None:
            assert message.message_id == decode_event(message.body).id
            ids.append(message.message_id)
        return ids


@asynccontextmanager
async def world(amqp_url: str, database_url: str, topology: Topology, schema: str) -> AsyncIterator[World]:
    w = World(amqp_url, database_url, topology, schema)
    w.db = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    await migrate(w.db)
    connection = await aio_pika.connect(amqp_url)
    try:
        w.channel = await connection.channel(publisher_confirms=True)
        results = await declare_results(w.channel, topology)
        w.results = await w.channel.declare_queue(scratch_queue_name(topology, "results"))
        await w.results.bind(results, routing_key="#")
        yield w
    finally:
        await connection.close()
        await w.db.close()


def make_testpress_batch(count: int) -> list[RawEnvelope]:
    return [
        samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(attempt_id=50_000 + n)))
        for n in range(count)
    ]
