"""Per-endpoint rate limits with two delivery workers on the real broker and database."""

import asyncio
import time
import uuid

from admin import wire
from common.service import running
from common.settings import ProcessSettings
from schemas.topology import Topology
from tests.support.delivery import FAST, make_event, subscriber, world
from workers.delivery.run import start_delivery

LIMIT = 3  # per second


async def test_a_limited_endpoint_gets_no_more_than_its_limit_and_the_others_are_not_slowed(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        subscriber() as sub,
        world(amqp_url, database_url, topology, db_schema) as w,
        running("delivery", (w.settings, FAST), start_delivery, ProcessSettings(shutdown_timeout=2.0)),
    ):
        limited, _ = await w.subscribe(
            sub.url("/limited"), rate_limit=wire.RateLimit(count=LIMIT, per="second")
        )
        await w.subscribe(sub.url("/free"))
        count = 12
        started = time.monotonic()
        for _ in range(count):
            await w.publish(make_event())
        free = await sub.wait("/free", count, timeout=10)
        free_done = time.monotonic() - started
        got = await sub.wait("/limited", count, timeout=30)

        # The unlimited endpoint got everything at once, long before the limited one could.
        assert free_done < (count / LIMIT) - 1.5, free_done
        assert len({r.body for r in free}) == count
        arrivals = sorted(r.at for r in got)
        assert arrivals[-1] - started >= (count / LIMIT) - 1.5
        # No window of a second (less a little for loopback jitter) saw more than the limit.
        for i in range(len(arrivals) - LIMIT):
            assert arrivals[i + LIMIT] - arrivals[i] >= 0.95, arrivals
        # Every delivery was made once, and the attempt log says why some waited.
        await asyncio.sleep(0.3)
        assert len(sub.received["/limited"]) == count
        rows = await w.pool.fetch(
            "SELECT d.status, a.outcome, a.error FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id"
            " WHERE d.subscription_id = $1",
            uuid.UUID(limited),
        )
        outcomes = [r["outcome"] for r in rows]
        assert outcomes.count("succeeded") == count
        assert outcomes.count("rate_limited") >= count - LIMIT - 1
        assert all("rate limit (3/second)" in r["error"] for r in rows if r["outcome"] == "rate_limited")


async def test_the_rate_limit_is_shown_and_changed_in_the_admin_api(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    from admin import store

    async with world(amqp_url, database_url, topology, db_schema) as w:
        sub_id, _ = await w.subscribe(
            "http://127.0.0.1:9/x", rate_limit=wire.RateLimit(count=30, per="minute")
        )
        async with w.pool.acquire() as conn:
            shown = await store.get_subscription(conn, sub_id)
            assert shown is not None and shown.rate_limit == wire.RateLimit(count=30, per="minute")
            kept = await store.update_subscription(
                conn, sub_id, wire.SubscriptionUpdate(description="d"), None
            )
            assert kept is not None and kept.rate_limit == wire.RateLimit(count=30, per="minute")
            gone = await store.update_subscription(
                conn, sub_id, wire.SubscriptionUpdate(rate_limit=None), None
            )
            assert gone is not None and gone.rate_limit is None
