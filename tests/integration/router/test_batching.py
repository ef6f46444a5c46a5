"""How the router forms its batches with `batch_wait` set: a webhook arriving alone is taken at once; while
webhooks stream in, a batch that is not full waits up to `batch_wait` for company, and no longer than
it takes to fill; a redelivered message never waits (it is a batch of its own)."""

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pamqp.header import ContentHeader

from common.db import create_pool
from schemas.topology import Topology
from workers.router.loop import Router
from workers.router.settings import RouterSettings

WAIT = 0.4


def _message(tag: int, *, redelivered: bool = False) -> DeliveredMessage:
    deliver = spec.Basic.Deliver(
        consumer_tag="test", delivery_tag=tag, redelivered=redelivered, exchange="", routing_key="raw"
    )
    header = ContentHeader(body_size=0, properties=spec.Basic.Properties())
    # A message as the broker hands it over; never acked here, so it needs no channel.
    return DeliveredMessage(delivery=deliver, header=header, body=b"", channel=None)  # type: ignore[arg-type]


@pytest.fixture
async def channels(amqp_url: str) -> AsyncIterator[tuple[AbstractChannel, AbstractChannel]]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel(), await connection.channel(publisher_confirms=True)


async def _router(
    channels: tuple[AbstractChannel, AbstractChannel],
    database_url: str,
    topology: Topology,
    **settings: object,
) -> Router:
    worker = RouterSettings(topology=topology, database_url=database_url, **settings)  # type: ignore[arg-type]
    pool = await create_pool(worker, size=1)
    await pool.close()  # never used: only batches are formed here
    return Router(worker, pool, *channels)


async def _timed(router: Router, stopping: "asyncio.Task[bool]") -> tuple[list[int], float]:
    started = time.perf_counter()
    batch = await router._next_batch(stopping)
    assert batch is not None
    return [m.delivery_tag or 0 for m in batch], time.perf_counter() - started


async def test_alone_at_once_and_streaming_waits_for_company(
    channels: tuple[AbstractChannel, AbstractChannel], database_url: str, topology: Topology
) -> None:
    router = await _router(channels, database_url, topology, batch_wait=WAIT, batch_size=3)
    stop = asyncio.Event()
    stopping = asyncio.create_task(stop.wait())
    try:
        # Nothing streaming: taken at once, even with company arriving soon after.
        await router._receive(_message(1))
        assert await _timed(router, stopping) == ([1], pytest.approx(0, abs=0.1))
        # Two at once: taken at once too (the batch before was a single one).
        await router._receive(_message(2))
        await router._receive(_message(3))
        tags, seconds = await _timed(router, stopping)
        assert tags == [2, 3] and seconds < 0.1
        # Now streaming: a lone message waits for the next, up to WAIT.
        await router._receive(_message(4))
        asyncio.get_running_loop().call_later(
            0.05, lambda: asyncio.ensure_future(router._receive(_message(5)))
        )
        tags, seconds = await _timed(router, stopping)
        assert tags == [4, 5] and WAIT * 0.9 <= seconds < WAIT + 0.2
        # ...and no longer than it takes to fill the batch.
        await router._receive(_message(6))
        for tag in (7, 8):
            asyncio.get_running_loop().call_later(
                0.05, lambda t=tag: asyncio.ensure_future(router._receive(_message(t)))
            )
        tags, seconds = await _timed(router, stopping)
        assert tags == [6, 7, 8] and seconds < WAIT * 0.75
        # A redelivered message is a batch of its own and never waits.
        await router._receive(_message(9, redelivered=True))
        tags, seconds = await _timed(router, stopping)
        assert tags == [9] and seconds < 0.1
    finally:
        stopping.cancel()


async def test_stopping_ends_the_wait(
    channels: tuple[AbstractChannel, AbstractChannel], database_url: str, topology: Topology
) -> None:
    router = await _router(channels, database_url, topology, batch_wait=10.0, batch_size=10)
    stop = asyncio.Event()
    stopping = asyncio.create_task(stop.wait())
    for tag in (1, 2):
        await router._receive(_message(tag))
    assert await router._next_batch(stopping) is not None  # two: streaming from now on
    await router._receive(_message(3))
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.perf_counter()
    assert await router._next_batch(stopping) is None  # the message goes back to the queue
    assert time.perf_counter() - started < 1.0


async def test_without_batch_wait_nothing_waits(
    channels: tuple[AbstractChannel, AbstractChannel], database_url: str, topology: Topology
) -> None:
    router = await _router(channels, database_url, topology, batch_size=10)
    assert router._settings.batch_wait == 0
    stop = asyncio.Event()
    stopping = asyncio.create_task(stop.wait())
    try:
        for tag in (1, 2):
            await router._receive(_message(tag))
        assert (await _timed(router, stopping))[0] == [1, 2]
        await router._receive(_message(3))
        tags, seconds = await _timed(router, stopping)
        assert tags == [3] and seconds < 0.1
    finally:
        stopping.cancel()
