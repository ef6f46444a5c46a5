"""The batcher that gathers concurrent attempts' database calls (workers/delivery/batch.py), without
I/O: the `run` functions here are plain coroutines that record the groups they were given."""

import asyncio
from collections.abc import Sequence

import pytest

from workers.delivery.batch import Batch


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.fail_on = fail_on

    async def run(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        await asyncio.sleep(0)
        if self.fail_on in items:
            raise ValueError(f"statement failed on {self.fail_on}")
        return [item.upper() for item in items]


async def test_calls_made_together_share_one_group_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run, window=0.01)
    results = await asyncio.gather(*(batch.submit(x) for x in ["ann", "bob", "cy"]))
    assert results == ["ANN", "BOB", "CY"]
    assert recorder.groups == [["ann", "bob", "cy"]]


async def test_a_full_group_runs_at_once_and_a_later_call_starts_the_next() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run, window=10.0, size=2)  # the window never expires here
    first = await asyncio.wait_for(asyncio.gather(batch.submit("a"), batch.submit("b")), 1.0)
    assert first == ["A", "B"]
    third = asyncio.ensure_future(batch.submit("c"))
    await asyncio.sleep(0.05)
    assert not third.done()  # alone, it waits for the window (or company)
    fourth = await asyncio.wait_for(batch.submit("d"), 1.0)
    assert (await third, fourth) == ("C", "D")
    assert recorder.groups == [["a", "b"], ["c", "d"]]


async def test_the_same_key_never_shares_a_group() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run, key=lambda x: x[0], window=0.01)
    results = await asyncio.gather(batch.submit("a1"), batch.submit("b1"), batch.submit("a2"))
    assert results == ["A1", "B1", "A2"]
    assert recorder.groups == [["a1", "b1"], ["a2"]]


async def test_a_failed_statement_fails_every_caller_of_its_group_and_only_those() -> None:
    recorder = Recorder(fail_on="bad")
    batch: Batch[str, str] = Batch(recorder.run, window=0.01)
    outcomes = await asyncio.gather(batch.submit("ok"), batch.submit("bad"), return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert await batch.submit("later") == "LATER"


async def test_a_cancelled_caller_does_not_cancel_its_group() -> None:
    recorder = Recorder()
    batch: Batch[str, str] = Batch(recorder.run, window=0.02)
    leaving = asyncio.ensure_future(batch.submit("gone"))
    staying = asyncio.ensure_future(batch.submit("kept"))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == "KEPT"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert recorder.groups == [["gone", "kept"]]
