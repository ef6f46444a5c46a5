"""The system tests' fixtures: the test's own schema, migrated, for processes that expect one; a
delivery world whose work is done by the test's delivery worker processes."""

from collections.abc import AsyncIterator

import pytest

from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from subscribers.schedule import Schedule
from tests.support.delivery import FAST, World, world
from tests.support.services import migrated, scratch_queue_name

__all__ = ["migrated"]


@pytest.fixture
async def delivery_world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[World]:
    """The world's database, broker and helpers, without a worker of its own: the processes of the
    test do the work (and declare the queues)."""
    # The processes' tiers (their schedule differs from the world's): removed after the test.
    for name in delivery_queue_names(topology, Schedule((0, 0.2, 0.4), park=0.05)):
        scratch_queue_name(topology, "tier", name=name)
    async with world(amqp_url, database_url, topology, db_schema, FAST, worker=False) as running:
        yield running
