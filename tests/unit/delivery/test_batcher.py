"""The batcher that gathers concurrent attempts' database calls (common/batch.py), without
I/O: the `run` function here is a plain coroutine that records the groups it was given and, while
its gate is closed, takes as long as a slow statement."""

import asyncio
from collections.abc import Sequence

import pytest

from common.batch import Batch


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        await self.gate.wait()
        if self.fail_on in items:
            raise ValueError(f"statement failed on {self.fail_on}")
        return [item.upper() for item in items]


async def test_calls_made_together_share_one_group_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run)
    results = await asyncio.gather(*(batch.submit(x) for x in ["ann", "bob", "cy"]))
    assert results == ["ANN", "BOB", "CY"]
    assert recorder.groups == [["ann", "bob", "cy"]]


async def test_a_lone_call_runs_at_once() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run)
    assert await asyncio.wait_for(batch.submit("solo"), 0.5) == "SOLO"


async def test_calls_made_while_the_groups_run_gather_into_the_next() -> None:
    recorder = Recorder()
    recorder.gate.clear()  # the statements "take time" until the gate opens
    batch: Batch[str, str] = Batch(recorder.run, parallel=1)
    first = asyncio.ensure_future(batch.submit("a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batch.submit(x)) for x in ["b", "c", "d"]]
    await asyncio.sleep(0.01)
    assert recorder.groups == [["a"]]  # the others wait for the running group
    recorder.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*later) == ["B", "C", "D"]
    assert recorder.groups == [["a"], ["b", "c", "d"]]


async def test_a_full_group_starts_without_waiting() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batch: Batch[str, str] = Batch(recorder.run, parallel=1, size=2)
    running = asyncio.ensure_future(batch.submit("a"))
    await asyncio.sleep(0.01)
    full = [asyncio.ensure_future(batch.submit(x)) for x in ["b", "c"]]
    await asyncio.sleep(0.01)
    assert recorder.groups == [["a"], ["b", "c"]]
    recorder.gate.set()
    assert [await running, *await asyncio.gather(*full)] == ["A", "B", "C"]


async def test_the_same_key_never_shares_a_group() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run, key=lambda x: x[0])
    results = await asyncio.gather(batch.submit("a1"), batch.submit("b1"), batch.submit("a2"))
    assert results == ["A1", "B1", "A2"]
    assert recorder.groups == [["a1", "b1"], ["a2"]]


async def test_a_failed_statement_fails_every_caller_of_its_group_and_only_those() -> None:
    recorder = Recorder(fail_on="bad")
    batch: Batch[str, str] = Batch(recorder.run)
    outcomes = await asyncio.gather(batch.submit("ok"), batch.submit("bad"), return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert await batch.submit("later") == "LATER"


async def test_a_cancelled_caller_does_not_cancel_its_group() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batch: Batch[str, str] = Batch(recorder.run)
    leaving = asyncio.ensure_future(batch.submit("gone"))
    staying = asyncio.ensure_future(batch.submit("kept"))
    await asyncio.sleep(0.01)
    leaving.cancel()
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await staying == "KEPT"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert recorder.groups == [["gone", "kept"]]
