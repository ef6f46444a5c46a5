"""Results written into a gradebook through the whole path (issue 21): vendor webhooks through the
router, a `workers delivery` process, the admin API, and the devkit OneRoster 1.2 provider and Caliper
endpoint as real HTTP servers on loopback. What the provider keeps is what an institution's SIS
would show."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from devkit import samples
from devkit.caliper import CaliperEndpoint
from devkit.oneroster import OneRosterProvider
from gradebook.config import encode_destination
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.admin import AUTH, Admin, admin_api
from tests.support.delivery_process import delivery_process, stop
from tests.support.gradebook_world import (
    CALIPER_TOKEN_ENV,
    SECRET_ENV,
    caliper_destination,
    oneroster_destination,
)
from tests.support.pipeline import RunningRouter, running_router

CLIENT_SECRET = "s3cret-for-delivery-tests"
CALIPER_TOKEN = "caliper-token-for-delivery-tests"


@dataclass
class Gradebook:
    router: RunningRouter
    api: Admin
    provider: OneRosterProvider
    sent: int = 0

    async def subscribe(self, **changes: Any) -> str:
        destination = oneroster_destination(self.provider.base_url, self.provider.token_url, **changes)
        status, created = await self.api.call(
            "POST", "/v1/subscriptions", {"destination": msgspec_builtins(destination)}
        )
        assert status == 201, created
        return str(created["subscription"]["id"])

    async def itep(self, status: str, test_id: str, **changes: Any) -> None:
        data, content_type = samples.itep_urlencoded(samples.itep(status, test_id=test_id, **changes))
        await self.router.publish_raw(samples.envelope(Vendor.ITEP, data, content_type=content_type))
        self.sent += 1
        await self.router.raw_stored(self.sent)

    async def results(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.provider.results) < count:
                await asyncio.sleep(0.05)
        return list(self.provider.results.values())

    async def delivery(self, subscription_id: str, status: str, timeout: float = 20.0) -> asyncpg.Record:
        async with asyncio.timeout(timeout):
            while True:
                row = await self.api.pool.fetchrow(
                    "SELECT * FROM deliveries WHERE subscription_id = $1 AND status = $2 ORDER BY created_at",
                    uuid.UUID(subscription_id),
                    status,
                )
                if row is not None:
                    return row
                await asyncio.sleep(0.05)

    async def attempts(self, delivery_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(
            await self.api.pool.fetch(
                "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id", delivery_id
            )
        )


def msgspec_builtins(value: Any) -> Any:
    import msgspec

    return msgspec.json.decode(encode_destination(value))


@pytest.fixture
async def provider() -> AsyncIterator[OneRosterProvider]:
    running = OneRosterProvider(clients={"resultbus": CLIENT_SECRET})
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def gb(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, provider: OneRosterProvider
) -> AsyncIterator[Gradebook]:
    async with (
        running_router(amqp_url, database_url, topology, db_schema) as router,
        admin_api(amqp_url, database_url, topology, db_schema) as api,
    ):
        worker = await delivery_process(topology, db_schema, **{SECRET_ENV: CLIENT_SECRET})
        try:
            yield Gradebook(router, api, provider)
        finally:
            assert await stop(worker) == 0


async def test_a_grade_reaches_the_gradebook_and_a_redelivery_puts_the_same_result_again(
    gb: Gradebook,
) -> None:
    subscription_id = await gb.subscribe()
    await gb.itep("Complete", "GB0001AP")
    (result,) = await gb.results(1)
    assert result["scoreStatus"] == "fully graded" and result["status"] == "active"
    assert result["student"]["sourcedId"] == "cand-0042"  # the iTEP OID: candidate.external_id
    assert result["lineItem"]["sourcedId"] in gb.provider.line_items
    row = await gb.delivery(subscription_id, "succeeded")
    # Sent again (an operator's replay, a redelivered task): the same result, replaced, not a second.
    status, _ = await gb.api.call(
        "POST", f"/v1/subscriptions/{subscription_id}/replay", {"event_id": str(row["event_id"])}
    )
    assert status == 202
    async with asyncio.timeout(20):
        while len(gb.provider.calls_to("PUT", "/results/")) < 2:
            await asyncio.sleep(0.05)
    puts = gb.provider.calls_to("PUT", "/results/")
    assert [c.status for c in puts] == [201, 200] and puts[0].path == puts[1].path
    assert len(gb.provider.results) == 1
    assert len(gb.provider.calls_to("PUT", "/lineItems/")) == 1  # created once


async def test_an_invalidation_updates_the_result_it_follows(gb: Gradebook) -> None:
    await gb.subscribe()
    await gb.itep("Complete", "GB0002AP")
    (graded,) = await gb.results(1)
    await gb.itep("Invalidated", "GB0002AP")
    async with asyncio.timeout(20):
        while gb.provider.results[graded["sourcedId"]]["scoreStatus"] == "fully graded":
            await asyncio.sleep(0.05)
    (withdrawn,) = gb.provider.results.values()
    assert withdrawn["sourcedId"] == graded["sourcedId"]
    assert withdrawn["scoreStatus"] == "not submitted" and "score" not in withdrawn


async def test_a_status_that_did_not_move_the_exam_never_undoes_an_invalidation(gb: Gradebook) -> None:
    subscription_id = await gb.subscribe()
    await gb.itep("Complete", "GB0006AP")
    (graded,) = await gb.results(1)
    await gb.itep("Invalidated", "GB0006AP")
    async with asyncio.timeout(20):
        while gb.provider.results[graded["sourcedId"]]["scoreStatus"] == "fully graded":
            await asyncio.sleep(0.05)
    # iTEP sends the Complete again, one field changed (a new event, stored as not moving the exam).
    await gb.itep("Complete", "GB0006AP", trNote="re-sent")
    async with asyncio.timeout(20):
        while (
            await gb.api.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE subscription_id = $1 AND status IN ('pending', 'waiting')",
                uuid.UUID(subscription_id),
            )
        ) or len(
            (await gb.api.call("GET", f"/v1/subscriptions/{subscription_id}/deliveries"))[1]["deliveries"]
        ) < 3:
            await asyncio.sleep(0.05)
    (result,) = gb.provider.results.values()
    assert result["scoreStatus"] == "not submitted" and "score" not in result
    _, listed = await gb.api.call("GET", f"/v1/subscriptions/{subscription_id}/deliveries")
    (resent,) = [d for d in listed["deliveries"] if d["status"] == "cancelled"]
    assert "did not move the exam (it stands at invalidated)" in resent["attempt_log"][-1]["error"]


async def test_an_unmapped_candidate_is_held_then_delivered_once_mapped(gb: Gradebook) -> None:
    # No OID and no identifier rule: nothing says who the candidate is.
    subscription_id = await gb.subscribe()
    await gb.itep("Complete", "GB0003AP", OID="")
    row = await gb.delivery(subscription_id, "held")
    (attempt,) = await gb.attempts(row["id"])
    assert attempt["outcome"] == "held" and "GB0003AP" in attempt["error"]
    status, held = await gb.api.call("GET", "/v1/crosswalk/held", subscription_id=subscription_id)
    assert status == 200 and [h["candidate"] for h in held["held"]] == ["GB0003AP"]
    assert gb.provider.results == {}
    # The operator sees it on the subscription's console page, with the reason; and no test event is
    # offered (it would write a grade for a made-up candidate).
    async with gb.api.http.get(
        f"{gb.api.base}/console/subscriptions/{subscription_id}", headers=AUTH
    ) as page:
        html = await page.text()
    assert page.status == 200 and "Held for the crosswalk" in html and "GB0003AP" in html
    assert "a OneRoster 1.2 gradebook: results in class class-esl-101" in html
    assert "send-test" not in html
    status, refused = await gb.api.call("POST", f"/v1/subscriptions/{subscription_id}/test")
    assert status == 422 and "gets no test event" in refused["error"]
    status, listed = await gb.api.call(
        "GET", f"/v1/subscriptions/{subscription_id}/deliveries", status="held"
    )
    assert status == 200 and [d["status"] for d in listed["deliveries"]] == ["held"]
    status, _ = await gb.api.call(
        "PUT", "/v1/crosswalk/itep/GB0003AP", {"student": "S-1003", "by": "registrar@example.com"}
    )
    assert status in (200, 201)
    (result,) = await gb.results(1)
    assert result["student"]["sourcedId"] == "S-1003"
    await gb.delivery(subscription_id, "succeeded")


async def test_a_5xx_storm_is_retried_until_the_gradebook_takes_it(gb: Gradebook) -> None:
    subscription_id = await gb.subscribe()
    gb.provider.fail_next(2, 503, path="/results")
    await gb.itep("Complete", "GB0004AP")
    await gb.results(1)
    row = await gb.delivery(subscription_id, "succeeded")
    outcomes = [a["outcome"] for a in await gb.attempts(row["id"])]
    assert outcomes == ["retry", "retry", "succeeded"]


async def test_a_4xx_is_recorded_with_the_providers_message_and_not_retried(gb: Gradebook) -> None:
    subscription_id = await gb.subscribe()
    gb.provider.fail_next(
        1, 422, path="/results", description="student cand-0042 is not enrolled in the class"
    )
    await gb.itep("Complete", "GB0005AP")
    row = await gb.delivery(subscription_id, "failed")
    (attempt,) = await gb.attempts(row["id"])
    assert attempt["status_code"] == 422 and "not enrolled in the class" in attempt["error"]
    await asyncio.sleep(1.0)  # a retry would have been made by now (the schedule's first is 200 ms)
    assert len(await gb.attempts(row["id"])) == 1


async def test_tokens_expiring_in_the_middle_of_a_burst_lose_nothing(gb: Gradebook) -> None:
    subscription_id = await gb.subscribe()
    for n in range(10):
        await gb.itep("Complete", f"GB01{n:02d}AP")
        if n == 4:
            gb.provider.expire_tokens()
    await gb.results(10)
    assert gb.provider.tokens_issued >= 2
    # The provider has every result before the worker records its answer: wait for the records.
    async with asyncio.timeout(20):
        while (
            statuses := await gb.api.pool.fetch(
                "SELECT status, count(*) FROM deliveries WHERE subscription_id = $1 GROUP BY status",
                uuid.UUID(subscription_id),
            )
        ) and {r["status"]: r["count"] for r in statuses}.get("succeeded") != 10:
            assert not {r["status"] for r in statuses} & {"failed", "cancelled"}, statuses
            await asyncio.sleep(0.05)


async def test_caliper_receives_a_grade_event(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    endpoint = CaliperEndpoint(token=CALIPER_TOKEN)
    await endpoint.start()
    try:
        async with (
            running_router(amqp_url, database_url, topology, db_schema) as router,
            admin_api(amqp_url, database_url, topology, db_schema) as api,
        ):
            worker = await delivery_process(topology, db_schema, **{CALIPER_TOKEN_ENV: CALIPER_TOKEN})
            try:
                destination = msgspec_builtins(caliper_destination(endpoint.url))
                status, created = await api.call("POST", "/v1/subscriptions", {"destination": destination})
                assert status == 201, created
                data, content_type = samples.itep_urlencoded(samples.itep("Complete", test_id="GB0200AP"))
                await router.publish_raw(samples.envelope(Vendor.ITEP, data, content_type=content_type))
                async with asyncio.timeout(20):
                    while not endpoint.events:
                        await asyncio.sleep(0.05)
                (event,) = endpoint.events
                assert event["type"] == "GradeEvent" and event["action"] == "Graded"
            finally:
                assert await stop(worker, signal.SIGTERM) == 0
    finally:
        await endpoint.close()
