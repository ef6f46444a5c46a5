"""The router's quick retries, without I/O: a TRANSIENT failure is tried again after each pause, the
last failure raised; a stop ends the retries; anything else is raised at once."""

import asyncio

import asyncpg
import pytest

from workers.router.quick_retries import quickly_retried


class Flaky:
    """Fails with `error` the first `failures` times, then answers how many calls it took."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.calls, self.failures = 0, failures
        self.error = error or ConnectionResetError("a blip")

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


async def test_a_blip_is_tried_again_after_each_pause() -> None:
    attempt = Flaky(failures=2)
    assert await quickly_retried(attempt, (0, 0)) == 3


async def test_the_last_failure_is_raised_once_the_pauses_are_spent() -> None:
    attempt = Flaky(failures=5)
    with pytest.raises(ConnectionResetError):
        await quickly_retried(attempt, (0, 0))
    assert attempt.calls == 3


async def test_no_pauses_is_one_try() -> None:
    attempt = Flaky(failures=1)
    with pytest.raises(ConnectionResetError):
        await quickly_retried(attempt, ())
    assert attempt.calls == 1


async def test_a_stop_ends_the_retries() -> None:
    stop = asyncio.Event()
    stop.set()
    attempt = Flaky(failures=1)
    with pytest.raises(ConnectionResetError):
        await quickly_retried(attempt, (0, 0), stop=stop)
    assert attempt.calls == 1


async def test_what_is_not_transient_is_raised_at_once() -> None:
    attempt = Flaky(failures=1, error=asyncpg.DataError("a bad row"))
    with pytest.raises(asyncpg.DataError):
        await quickly_retried(attempt, (0, 0))
    assert attempt.calls == 1
