"""Delivery worker processes (`python -m workers delivery`) stopped in the middle of their work: killed
while posting, nothing is lost; told to stop in the middle of a burst, nothing is sent twice."""

import asyncio
import collections
import signal

from aiohttp import web

from schemas.topology import Topology
from tests.support.delivery import World, make_event, subscriber
from tests.support.delivery_process import delivery_process, stop


async def test_a_worker_killed_while_posting_loses_nothing(
    delivery_world: World, topology: Topology, db_schema: str
) -> None:
    async with subscriber() as sub:
        calls = 0

        async def hang_once(request: web.Request) -> web.StreamResponse:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(30)  # the worker is killed meanwhile
            return web.Response()

        sub.behaviours["/hook"] = hang_once
        subscription_id, _ = await delivery_world.subscribe(sub.url("/hook"))
        first = await delivery_process(topology, db_schema)
        try:
            await delivery_world.publish(make_event())
            await sub.wait("/hook", 1)
            assert await stop(first, signal.SIGKILL) == -signal.SIGKILL
        finally:
            await stop(first, signal.SIGKILL)
        second = await delivery_process(topology, db_schema)
        try:
            got = await sub.wait("/hook", 2, timeout=15)
            assert got[1].headers["webhook-id"] == got[0].headers["webhook-id"]
            row = await delivery_world.delivery(subscription_id, "succeeded")
            # The killed attempt was never recorded; the second is the delivery's only attempt.
            assert [a["outcome"] for a in await delivery_world.attempts(row["id"])] == ["succeeded"]
            assert calls == 2
        finally:
            assert await stop(second) == 0


async def test_a_worker_told_to_stop_mid_burst_sends_nothing_twice(
    delivery_world: World, topology: Topology, db_schema: str
) -> None:
    async with subscriber() as sub:

        async def slowish(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(0.6)
            return web.Response()

        paths = [f"/s{n}" for n in range(4)]
        for path in paths:
            sub.behaviours[path] = slowish
            await delivery_world.subscribe(sub.url(path))
        # A drain far shorter than the burst in hand: what has not started by then goes back.
        first = await delivery_process(topology, db_schema, RESULTBUS_SHUTDOWN_TIMEOUT="1s")
        events = [make_event() for _ in range(40)]
        try:
            for event in events:
                await delivery_world.publish(event)
            async with asyncio.timeout(15):
                while sum(len(sub.received.get(p, [])) for p in paths) < 16:
                    await asyncio.sleep(0.01)
        finally:
            assert await stop(first) == 0  # in the middle of the burst
        second = await delivery_process(topology, db_schema)
        try:
            async with asyncio.timeout(30):
                while sum(len(sub.received.get(p, [])) for p in paths) < len(events) * len(paths):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a copy sent twice would have arrived by now
        finally:
            assert await stop(second) == 0
        for path in paths:
            ids = collections.Counter(r.headers["webhook-id"] for r in sub.received[path])
            assert set(ids) == {e.id for e in events}
            assert max(ids.values()) == 1, f"{path}: sent twice: {[i for i, n in ids.items() if n > 1]}"
        attempts = await delivery_world.pool.fetch(
            "SELECT outcome, count(*) FROM delivery_attempts GROUP BY outcome"
        )
        assert {r["outcome"]: r["count"] for r in attempts} == {"succeeded": len(events) * len(paths)}
