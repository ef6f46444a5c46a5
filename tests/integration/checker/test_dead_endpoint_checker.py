"""The dead-endpoint checker against real HTTP servers on loopback, the real broker and database.

The schedule runs on a fake clock: every round moves it one interval (8 hours, the default) on, so
the tests use the real interval and threshold without waiting. Signatures are checked with the
`standardwebhooks` package, an implementation independent of ours."""

import asyncio
import itertools
import subprocess
import sys
import time

import msgspec
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from admin import store as admin_store
from admin import wire
from common.env import SettingError
from subscribers.endpoint import normalize_endpoint
from tests.support.checker import FAST, CheckWorld, answer, calls, sample
from tests.support.delivery import subscriber
from tests.support.paths import ROOT
from workers.checker.run import open_checker
from workers.checker.settings import CheckerSettings


async def test_one_call_per_endpoint_signed_for_every_subscription(cw: CheckWorld) -> None:
    async with subscriber() as sub:
        url = sub.url("/hook")
        first, first_secret = await cw.subscribe(url)
        # The same endpoint up to trivia: scheme case. One call, signed for both.
        _, second_secret = await cw.subscribe(url.replace("http://", "HTTP://"))
        await cw.subscribe(sub.url("/other"))
        disabled, _ = await cw.subscribe(sub.url("/disabled"))
        async with cw.pool.acquire() as conn:
            await admin_store.update_subscription(
                conn, disabled, wire.SubscriptionUpdate(status="disabled"), None
            )
        async with cw.checker() as checker:
            summary = await cw.next_round(checker)
            assert (summary.checked, summary.alive, summary.failed) == (2, 2, 0)
            (got,) = sub.received["/hook"]
            assert len(got.headers["webhook-signature"].split(" ")) == 2
            for secret in (first_secret, second_secret):
                verified = Webhook(secret).verify(got.body, got.headers)
                assert verified["type"] == "verification"
                assert verified["id"] == got.headers["webhook-id"]
            assert calls(sub, "/other") == 1 and calls(sub, "/disabled") == 0
            # Not due again until the interval has passed.
            cw.clock.advance(CheckerSettings().interval - 1)
            assert (await checker.run_round()).checked == 0
            assert (await cw.next_round(checker)).checked == 2
        assert calls(sub, "/hook") == 2
        endpoint = await cw.endpoint(url)
        assert endpoint["consecutive_failures"] == 0 and endpoint["last_checked_at"] == cw.clock.now
        assert (await cw.subscription(first)).status == "active"


async def test_endpoint_failing_twice_then_recovering_is_kept(cw: CheckWorld) -> None:
    statuses = iter([500, 502, 200, 500, 500])

    async def flaky(request: web.Request) -> web.StreamResponse:
        return answer(next(statuses))

    async with subscriber() as sub:
        sub.behaviours["/hook"] = flaky
        url = sub.url("/hook")
        subscription_id, _ = await cw.subscribe(url)
        async with cw.checker() as checker:
            first = await cw.next_round(checker)
            started_failing = cw.clock.now
            second = await cw.next_round(checker)
            assert (first.failed, second.failed) == (1, 1)
            endpoint = await cw.endpoint(url)
            assert endpoint["consecutive_failures"] == 2
            assert endpoint["failing_since"] == started_failing
            assert endpoint["last_error"].startswith("HTTP 502: answered 502")

            assert (await cw.next_round(checker)).alive == 1
            endpoint = await cw.endpoint(url)
            assert endpoint["consecutive_failures"] == 0
            assert endpoint["failing_since"] is None and endpoint["last_error"] is None
            # The count starts again: two more failures are still not three in a row.
            await cw.next_round(checker)
            await cw.next_round(checker)
        assert (await cw.endpoint(url))["consecutive_failures"] == 2
        assert (await cw.subscription(subscription_id)).status == "active"
        assert calls(sub, "/hook") == 5
        assert await cw.events.get(fail=False) is None


async def test_three_failures_unsubscribe_every_subscription_with_reason_and_event(cw: CheckWorld) -> None:
    failures = 0
    release = asyncio.Event()

    async def dying(request: web.Request) -> web.StreamResponse:
        nonlocal failures
        failures += 1
        if failures < 3:
            return answer(500)
        await release.wait()  # the third time it does not answer at all
        return answer(200)

    async with subscriber() as sub:
        sub.behaviours["/dead"] = dying
        url = sub.url("/dead")
        dead = [(await cw.subscribe(url))[0] for _ in range(2)]
        healthy, _ = await cw.subscribe(sub.url("/alive"))
        counted = {metric: sample(metric) for metric in ("alive", "failed", "unsubscribed")}
        async with cw.checker() as checker:
            await cw.next_round(checker)
            failing_since = cw.clock.now
            await cw.next_round(checker)
            third = await cw.next_round(checker)
            release.set()
            assert (third.checked, third.alive, third.failed) == (2, 1, 1)
            assert (third.unsubscribed, third.endpoints_dropped) == (2, 1)

            reason = (
                f"endpoint failed 3 verification calls in a row since {failing_since.isoformat()}; "
                "last error: timeout"
            )
            for subscription_id in dead:
                found = await cw.subscription(subscription_id)
                assert (found.status, found.status_reason) == ("unsubscribed", reason)
            assert (await cw.subscription(healthy)).status == "active"
            async with cw.pool.acquire() as conn:
                listed = await admin_store.list_subscriptions(
                    conn, wire.SubscriptionsQuery(status="unsubscribed")
                )
            assert sorted(s.id for s in listed) == sorted(dead)

            events = await cw.unsubscribed_events(2)
            assert sorted(e.subscription_id for e in events) == sorted(dead)
            for event in events:
                assert event.endpoint == normalize_endpoint(url)
                assert (event.failed_checks, event.failing_since) == (3, failing_since)
                assert (event.last_error, event.reason) == ("timeout", reason)

            # The same counts as the summary line, for Prometheus.
            for metric, before in counted.items():
                assert sample(metric) - before == {"alive": 3, "failed": 3, "unsubscribed": 2}[metric]

            # Nobody is subscribed to it any more: it is not called again.
            after = await cw.next_round(checker)
            assert after.checked == 1 and calls(sub, "/dead") == 3


async def test_resubscribed_endpoint_starts_afresh(cw: CheckWorld) -> None:
    async def down(request: web.Request) -> web.StreamResponse:
        return answer(503)

    async with subscriber() as sub:
        sub.behaviours["/hook"] = down
        url = sub.url("/hook")
        old, _ = await cw.subscribe(url)
        async with cw.checker() as checker:
            for _ in range(3):
                await cw.next_round(checker)
            assert (await cw.subscription(old)).status == "unsubscribed"

            # Re-enabling starts afresh: two more failures leave it subscribed.
            await cw.reenable(old)
            assert (await cw.endpoint(url))["consecutive_failures"] == 0
            await cw.next_round(checker)
            await cw.next_round(checker)
            assert (await cw.endpoint(url))["consecutive_failures"] == 2
            assert (await cw.subscription(old)).status == "active"

            # So does subscribing again: the count is forgotten, both subscriptions survive a failure.
            new, _ = await cw.subscribe(url)
            assert (await cw.endpoint(url))["consecutive_failures"] == 0
            await cw.next_round(checker)
            endpoint = await cw.endpoint(url)
            assert endpoint["consecutive_failures"] == 1 and endpoint["failing_since"] == cw.clock.now
        assert {(await cw.subscription(s)).status for s in (old, new)} == {"active"}
        await cw.unsubscribed_events(1)  # the first unsubscription only


async def test_two_checkers_at_once_call_each_endpoint_once_per_round(cw: CheckWorld) -> None:
    async def slowish(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return answer(200)

    paths = [f"/e{n}" for n in range(12)]
    async with subscriber() as sub:
        for path in paths:
            sub.behaviours[path] = slowish
            await cw.subscribe(sub.url(path))
        config = msgspec.structs.replace(FAST, concurrency=3)
        async with cw.checker(config) as one, cw.checker(config) as two:
            for expected in (1, 2):
                cw.clock.advance(CheckerSettings().interval)
                summaries = await asyncio.gather(one.run_round(), two.run_round())
                assert sum(s.checked for s in summaries) == len(paths)
                assert {path: calls(sub, path) for path in paths} == dict.fromkeys(paths, expected)


async def test_running_checkers_call_each_endpoint_once_per_interval(cw: CheckWorld) -> None:
    # The loops themselves, on the real clock, with a short interval: two replicas never call one
    # endpoint twice within an interval.
    interval = 0.3
    async with subscriber() as sub:
        for path in ("/a", "/b"):
            await cw.subscribe(sub.url(path))
        config = msgspec.structs.replace(FAST, interval=interval, poll=0.02)
        async with (
            open_checker(cw.settings, config) as one,
            open_checker(cw.settings, config) as two,
        ):
            stop = asyncio.Event()
            loops = [asyncio.create_task(c.run(stop)) for c in (one, two)]
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*loops)
    for path in ("/a", "/b"):
        times = [r.at for r in sub.received[path]]
        assert 2 <= len(times) <= 4, times
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) > interval * 0.8, gaps


async def test_a_hanging_endpoint_does_not_delay_the_others(cw: CheckWorld) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return answer(200)

    async with subscriber() as sub:
        sub.behaviours["/hang"] = hang
        await cw.subscribe(sub.url("/hang"))
        fast = ["/a", "/b", "/c"]
        for path in fast:
            await cw.subscribe(sub.url(path))
        # Two slots: the hanging call holds one, the three others pass through the other.
        config = msgspec.structs.replace(FAST, concurrency=2, timeout=1.0)
        async with cw.checker(config) as checker:
            cw.clock.advance(config.interval)
            started = time.monotonic()
            round_ = asyncio.create_task(checker.run_round())
            for path in fast:
                await sub.wait(path, 1, timeout=0.5)
            # ...and recorded while the hanging call is still waiting.
            async with asyncio.timeout(0.5):
                while True:
                    rows = await cw.pool.fetch("SELECT url FROM endpoints WHERE last_checked_at IS NOT NULL")
                    if len(rows) == len(fast):
                        break
                    await asyncio.sleep(0.01)
            assert not round_.done() and time.monotonic() - started < 0.9
            summary = await round_
            release.set()
        assert (summary.checked, summary.alive, summary.failed) == (4, 3, 1)
        assert summary.duration_ms < 1500
        assert (await cw.endpoint(sub.url("/hang")))["last_error"] == "timeout"


def test_settings_from_env() -> None:
    assert CheckerSettings.from_env({}) == CheckerSettings()
    assert CheckerSettings().interval == 8 * 3600 and CheckerSettings().failures == 3
    parsed = CheckerSettings.from_env(
        {
            "RESULTBUS_CHECK_INTERVAL": "30m",
            "RESULTBUS_CHECK_TIMEOUT": "2.5",
            "RESULTBUS_CHECK_FAILURES": "5",
            "RESULTBUS_CHECK_CONCURRENCY": "4",
            "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS": "1",
        }
    )
    assert (parsed.interval, parsed.timeout, parsed.failures, parsed.concurrency) == (1800, 2.5, 5, 4)
    assert parsed.allow_private


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RESULTBUS_CHECK_INTERVAL", "soon"),
        ("RESULTBUS_CHECK_INTERVAL", "0"),
        ("RESULTBUS_CHECK_TIMEOUT", "1s,2s"),
        ("RESULTBUS_CHECK_FAILURES", "0"),
        ("RESULTBUS_CHECK_CONCURRENCY", "many"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        CheckerSettings.from_env({name: value})


def test_the_command_stops_at_boot_on_a_bad_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workers", "checker"],
        env={"RESULTBUS_CHECK_INTERVAL": "soon", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2 and "RESULTBUS_CHECK_INTERVAL" in result.stderr
