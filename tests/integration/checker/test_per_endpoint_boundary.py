"""The checker's per-endpoint boundary (issue 9): a bug while checking one endpoint is that endpoint's
outcome, counted and logged; the round's other endpoints are checked and recorded, and the loop runs
on. Real HTTP endpoints on loopback, the real database and broker."""

import asyncio

import pytest
import structlog
from prometheus_client import REGISTRY

from gradebook.send import Sender
from subscribers.poster import Outcome, Poster
from tests.support.checker import CheckWorld, calls
from tests.support.delivery import subscriber
from workers.checker import checker as checker_module
from workers.checker.settings import CheckerSettings
from workers.checker.store import DueEndpoint


def unexpected() -> float:
    return REGISTRY.get_sample_value("resultbus_unexpected_errors_total", {"consumer": "checker"}) or 0.0


async def test_a_bug_checking_one_endpoint_spares_the_others_and_the_loop(
    cw: CheckWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guards the fix in checker.py `_check_one`: before it, one endpoint's exception went through
    # `gather` (a bug turned into a bare count, or the round ended with its neighbours unrecorded).
    real_verify = checker_module.verify

    async def verify(poster: Poster, sender: Sender, endpoint: DueEndpoint) -> Outcome:
        if endpoint.url.endswith("/boom"):
            raise KeyError("a bug of ours")
        return await real_verify(poster, sender, endpoint)

    monkeypatch.setattr(checker_module, "verify", verify)
    before = unexpected()
    async with subscriber() as sub:
        for path in ("/a", "/boom", "/c"):
            await cw.subscribe(sub.url(path))
        with structlog.testing.capture_logs() as logs:
            async with cw.checker() as checker:
                stop = asyncio.Event()
                cw.clock.advance(CheckerSettings().interval)
                loop = asyncio.create_task(checker.run(stop))
                try:
                    async with asyncio.timeout(5):
                        while calls(sub, "/a") < 1 or calls(sub, "/c") < 1:
                            await asyncio.sleep(0.02)
                    for path in ("/a", "/c"):
                        # The endpoint has the call; the checker records it once it has the answer.
                        async with asyncio.timeout(5):
                            while (endpoint := await cw.endpoint(sub.url(path)))["last_checked_at"] is None:
                                await asyncio.sleep(0.02)
                        assert endpoint["last_checked_at"] == cw.clock.now
                        assert endpoint["consecutive_failures"] == 0
                    # The next interval: the loop is still running, and checks every one again.
                    cw.clock.advance(CheckerSettings().interval)
                    async with asyncio.timeout(5):
                        while calls(sub, "/a") < 2 or calls(sub, "/c") < 2:
                            await asyncio.sleep(0.02)
                    assert not loop.done()
                finally:
                    stop.set()
                    await asyncio.wait_for(loop, 5)
    assert calls(sub, "/boom") == 0
    assert unexpected() - before == 2  # once per round
    failures = [e for e in logs if e["event"] == "check failed unexpectedly"]
    assert len(failures) == 2 and all(e["endpoint"].endswith("/boom") for e in failures)
    assert failures[0]["log_level"] == "error" and failures[0]["error"] == "KeyError: 'a bug of ours'"
    rounds = [e for e in logs if e["event"] == "check round" and e["checked"]]
    assert [(r["checked"], r["alive"], r["errors"]) for r in rounds[:2]] == [(3, 2, 1), (3, 2, 1)]
