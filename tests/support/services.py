"""The shared services the tests use (the broker and the database) and the names a test registers for removal."""

import os
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from common import inventory
from schemas.topology import Topology
from workers.migrate import migrate

AMQP_URL = os.environ.get("RESULTBUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


DATABASE_URL = os.environ.get("RESULTBUS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def delete_topology(topo: Topology) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # Queues first: deleting an exchange leaves queues behind. Every name a process of ours may
        # declare under this prefix with default settings, and whatever the test registered: a
        # leaked quorum queue keeps files open in the broker, and enough of them exhaust it.
        # The deployment's list (common/inventory.py) names them as the roles do.
        known = [*(queue.name for queue in inventory.queues_of(topo, {})), *_extra_queues(topo)]
        for queue in dict.fromkeys(known):
            await channel.queue_delete(queue)
        for exchange in inventory.exchanges(topo):
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
async def migrated(db_schema: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": db_schema})
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield db_schema
