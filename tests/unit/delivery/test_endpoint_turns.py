"""Waiting for a slot of a busy endpoint in memory, and when a task is parked instead. No I/O: the
waits are asyncio's own, a few tens of milliseconds."""

import asyncio

import pytest

from workers.delivery.endpoints import WAITERS_PER_SLOT, Endpoints
from workers.delivery.health import Admission

ENDPOINT = "https://hooks.example.com/results"


async def test_a_busy_endpoint_that_keeps_answering_is_waited_for_past_the_patience() -> None:
    endpoints = Endpoints(limit=1)
    first = endpoints.started(ENDPOINT)
    waiter = asyncio.create_task(endpoints.turn(ENDPOINT, patience=0.05))

    async def answers_now_and_then() -> None:
        # A slot turns over every 30 ms, but to another task until the last: the endpoint answers.
        nonlocal first
        for _ in range(4):
            await asyncio.sleep(0.03)
            endpoints.finished(ENDPOINT, first, answered_below_500=True)
            first = endpoints.started(ENDPOINT)  # someone else took the slot
        await asyncio.sleep(0.03)
        endpoints.finished(ENDPOINT, first, answered_below_500=True)

    await answers_now_and_then()
    assert await waiter is Admission.GO  # waited ~150 ms, three times its patience, never parked


async def test_an_endpoint_where_nothing_ends_is_parked_after_the_patience() -> None:
    endpoints = Endpoints(limit=1)
    endpoints.started(ENDPOINT)  # hangs
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await endpoints.turn(ENDPOINT, patience=0.05) is Admission.PARK
    assert 0.04 <= loop.time() - began < 0.5


async def test_too_many_waiters_park_at_once() -> None:
    endpoints = Endpoints(limit=1)
    endpoints.started(ENDPOINT)
    waiters = [asyncio.create_task(endpoints.turn(ENDPOINT, patience=5.0)) for _ in range(WAITERS_PER_SLOT)]
    await asyncio.sleep(0)
    assert await asyncio.wait_for(endpoints.turn(ENDPOINT, patience=5.0), 0.5) is Admission.PARK
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def test_slots_go_to_waiters_in_arrival_order() -> None:
    endpoints = Endpoints(limit=1)
    slot = endpoints.started(ENDPOINT)
    order: list[int] = []

    async def wait(i: int) -> None:
        assert await endpoints.turn(ENDPOINT, patience=1.0) is Admission.GO
        order.append(i)
        started = endpoints.started(ENDPOINT)
        await asyncio.sleep(0.01)
        endpoints.finished(ENDPOINT, started, answered_below_500=True)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    endpoints.finished(ENDPOINT, slot, answered_below_500=True)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    endpoints = Endpoints(limit=1)
    slot = endpoints.started(ENDPOINT)
    waiter = asyncio.create_task(endpoints.turn(ENDPOINT, patience=5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    endpoints.finished(ENDPOINT, slot, answered_below_500=True)
    assert await endpoints.turn(ENDPOINT, patience=0.1) is Admission.GO
