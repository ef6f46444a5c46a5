"""Shared fixtures. Every test that touches a service gets a world of its own: a unique broker
prefix (exchanges and queues) and a unique PostgreSQL schema, both removed afterwards."""

import os
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from common.settings import RETRY_DELAYS
from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from workers.delivery.settings import DeliverySettings
from workers.fulfillment.broker import fulfillment_queue_names
from workers.fulfillment.settings import RETRY_DELAYS as ITEP_RETRY_DELAYS

AMQP_URL = os.environ.get("RESULTBUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("RESULTBUS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def database_url() -> str:
    return DATABASE_URL


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    topo = Topology(prefix=f"rbtest-{uuid.uuid4().hex[:12]}")
    yield topo
    await delete_topology(topo)


async def delete_topology(topo: Topology) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # Queues first: deleting an exchange leaves queues behind. Every name a process of ours may
        # declare under this prefix with default settings, and whatever the test registered: a
        # leaked quorum queue keeps files open in the broker, and enough of them exhaust it.
        known = [
            topo.raw_queue,
            topo.dead_queue,
            *(topo.retry_queue(delay) for delay in RETRY_DELAYS.default),
            topo.deliveries_queue,
            topo.delivery_attempts_queue,
            topo.delivery_dead_queue,
            *delivery_queue_names(topo, DeliverySettings().schedule),
            *fulfillment_queue_names(topo, ITEP_RETRY_DELAYS.default),
            *_extra_queues(topo),
        ]
        for queue in dict.fromkeys(known):
            await channel.queue_delete(queue)
        for exchange in (topo.raw_exchange, topo.results_exchange):
            await channel.exchange_delete(exchange)


def _extra_queues(topo: Topology) -> list[str]:
    # Queues that tests themselves create carry the prefix too; the broker has no prefix
    # listing over AMQP, so tests register them in this list via `scratch_queue_name`.
    return _CREATED.pop(topo.prefix, [])


_CREATED: dict[str, list[str]] = {}


def scratch_queue_name(topo: Topology, label: str, *, name: str | None = None) -> str:
    """A queue name for the test to use (or `name`, registered as is): deleted after the test."""
    name = name or f"{topo.prefix}.test.{label}"
    _CREATED.setdefault(topo.prefix, []).append(name)
    return name


@pytest.fixture
async def db_schema() -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
