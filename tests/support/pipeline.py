"""A router running against the real broker and database, in a world of the test's own."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from common.broker import declare_raw, declare_results, declare_tiers
from common.db import create_pool
from schemas.envelope import ENVELOPE_CONTENT_TYPE, RawEnvelope, encode_envelope
from schemas.event import ResultEvent, decode_event
from schemas.topology import Topology, raw_routing_key, tiers_ms
from tests.support.services import scratch_queue_name
from workers.migrate import migrate
from workers.router.loop import Router
from workers.router.settings import RouterSettings


@dataclass
class RunningRouter:
    settings: RouterSettings
    pool: asyncpg.Pool
    channel: AbstractChannel
    raw_exchange: AbstractExchange
    results: AbstractQueue  # a test queue bound to every routing key of the results exchange
    received: list[AbstractIncomingMessage] = field(default_factory=list)

    async def publish_raw(self, envelope: RawEnvelope) -> None:
        await self.raw_exchange.publish(
            aio_pika.Message(
                encode_envelope(envelope),
                message_id=envelope.id,
                content_type=ENVELOPE_CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=raw_routing_key(envelope.vendor, envelope.source),
        )

    async def raw_stored(self, count: int, timeout: float = 10.0) -> None:
        """Waits until `count` raw webhooks are stored."""
        async with asyncio.timeout(timeout):
            while await self.pool.fetchval("SELECT count(*) FROM raw_webhooks") < count:
                await asyncio.sleep(0.02)

    async def events(self, count: int, timeout: float = 10.0) -> list[ResultEvent]:
        """The first `count` normalized events published on the results exchange."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                message = await self.results.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                self.received.append(message)
        return [decode_event(m.body) for m in self.received[:count]]

    async def no_more_events(self, wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        assert await self.results.get(fail=False) is None


@contextlib.asynccontextmanager
async def running_router(
    amqp_url: str, database_url: str, topology: Topology, schema: str, **overrides: object
) -> AsyncIterator[RunningRouter]:
    settings = RouterSettings(
        amqp_url=amqp_url,
        topology=topology,
        database_url=database_url,
        database_schema=schema,
        **overrides,  # type: ignore[arg-type]
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=settings.prefetch)
        raw_exchange, _ = await declare_raw(channel, topology)
        results_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        results_exchange = await declare_results(results_channel, topology)
        await declare_tiers(results_channel, topology.raw, tiers_ms(settings.retry_delays))
        for delay_ms in tiers_ms(settings.retry_delays):
            scratch_queue_name(topology, "", name=topology.raw.tier(delay_ms))
        probe = await channel.declare_queue(scratch_queue_name(topology, "results"), durable=False)
        await probe.bind(results_exchange, routing_key="#")
        stop = asyncio.Event()
        router = Router(settings, pool, channel, results_channel)
        task = asyncio.create_task(router.run(stop))
        try:
            yield RunningRouter(settings, pool, channel, raw_exchange, probe)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        await connection.close()
        await pool.close()
