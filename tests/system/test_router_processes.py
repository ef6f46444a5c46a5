"""Routers as real processes: killed with SIGKILL mid-batch, stopped with SIGTERM under load, and two
replicas racing on the same exams. Whatever happens, every webhook is stored exactly once and its
events published at least once."""

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from devkit import samples
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.router_process import World, make_testpress_batch, world


@pytest.fixture
async def w(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[World]:
    async with world(amqp_url, database_url, topology, db_schema) as it:
        yield it


async def test_sigkill_mid_batch_loses_nothing_and_stores_nothing_twice(w: World) -> None:
    sent = make_testpress_batch(3000)
    await w.fill(sent)
    router = await w.start_router(RESULTBUS_BATCH_SIZE="100")
    async with asyncio.timeout(60):
        while await w.stored() < 300:
            await asyncio.sleep(0.01)
    router.kill()
    await router.wait()
    assert await w.stored() < 3000, "the kill came too late to test anything"

    router = await w.start_router()
    published: list[str] = []
    try:
        await w.until_stored(3000)
        ids = set(await w.db.fetchval("SELECT array_agg(id::text) FROM events"))
        async with asyncio.timeout(30):
            while not ids <= set(published):
                published.extend(await w.published_ids())
                await asyncio.sleep(0.05)
    finally:
        router.send_signal(signal.SIGTERM)
        assert await router.wait() == 0

    assert await w.db.fetchval("SELECT count(DISTINCT id) FROM raw_webhooks") == 3000
    assert len(ids) == 3000
    published.extend(await w.published_ids())
    assert set(published) == ids  # every event published at least once (a few maybe twice)


async def test_sigterm_under_load_returns_the_rest_and_exits_in_time(w: World) -> None:
    await w.fill(make_testpress_batch(3000))
    router = await w.start_router(RESULTBUS_SHUTDOWN_TIMEOUT="5")
    async with asyncio.timeout(60):
        while await w.stored() < 200:
            await asyncio.sleep(0.01)
    router.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await router.wait() == 0
    at_stop = await w.stored()

    router = await w.start_router()
    try:
        await w.until_stored(3000)
    finally:
        router.send_signal(signal.SIGTERM)
        assert await router.wait() == 0
    assert at_stop < 3000
    assert await w.db.fetchval("SELECT count(*) FROM events") == 3000


async def test_two_replicas_racing_on_the_same_exams_leave_the_right_state(w: World) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    envelopes = []
    for n in range(150):
        attempt = f"race-{n}"
        stamps = [(t0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (1, 2, 3)]
        for event, stamp in zip(
            ("attempt.submitted", "attempt.completed", "exam.resultsReleased"), stamps, strict=True
        ):
            body = samples.synap_released(attempt_id=attempt, timestamp=stamp)
            envelopes.append(samples.envelope(Vendor.SYNAP, samples.as_json(body), event=event))
    random.Random(7).shuffle(envelopes)  # late and early events of each exam, in any order
    await w.fill(envelopes)
    routers = [await w.start_router(RESULTBUS_BATCH_SIZE="7", RESULTBUS_PREFETCH="20") for _ in range(2)]
    try:
        await w.until_stored(450)
    finally:
        for router in routers:
            router.send_signal(signal.SIGTERM)
        for router in routers:
            assert await router.wait() == 0
    states = await w.db.fetch("SELECT status, count(*) FROM exams GROUP BY status")
    assert [(r["status"], r["count"]) for r in states] == [("released", 150)]
    applied = await w.db.fetchval("SELECT count(*) FROM events WHERE status = 'released' AND applied")
    assert applied == 150
