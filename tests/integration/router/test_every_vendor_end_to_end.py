"""The whole path for every vendor, with the example sources file and its demo secrets: an
authenticated call -> 200 -> raw row, event row, exam state, and the normalized event on a queue bound
to the results exchange."""

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devkit import samples
from ingress.app import create_app
from ingress.publisher import Publisher
from ingress.settings import IngressSettings
from ingress.sources import load_sources
from schemas.event import ResultEvent, Status
from schemas.topology import Topology
from tests.support.paths import ROOT, demo_secrets
from tests.support.pipeline import RunningRouter, running_router


@pytest.fixture
async def pipeline(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], RunningRouter]]:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        publisher = Publisher(amqp_url, topology, confirm_timeout=2.0)
        await publisher.connect()
        settings = IngressSettings.from_env({"RESULTBUS_AMQP_PREFIX": topology.prefix})
        sources = load_sources(ROOT / "deploy" / "sources.example.toml", demo_secrets())
        try:
            async with TestClient(
                TestServer(create_app(settings, sources, publisher), host="127.0.0.1")
            ) as client:
                yield client, router
        finally:
            await publisher.close()


async def test_every_vendor_end_to_end(
    pipeline: tuple[TestClient[web.Request, web.Application], RunningRouter],
) -> None:
    client, router = pipeline
    answered: dict[str, str] = {}
    for vendor, source, body, headers in samples.demo_requests(demo_secrets(), 4242):
        response = await client.post(f"/hooks/{source}", data=body, headers=headers)
        assert response.status == 200, await response.text()
        answered[vendor] = (await response.json())["id"]

    events: dict[str, ResultEvent] = {e.vendor.value: e for e in await router.events(4)}
    assert {v: e.webhook_id for v, e in events.items()} == answered

    itep, inspera, synap, testpress = (events[v] for v in ("itep", "inspera", "synap", "testpress"))
    assert (itep.status, itep.source, itep.vendor_event) == (Status.COMPLETED, "itep-demo", "Complete")
    assert itep.exam is not None and itep.exam.key == "DEMO4242B8AP"
    assert itep.candidate is not None and itep.candidate.external_id == "cand-0042"
    assert itep.result is not None and (itep.result.level, itep.result.cefr) == (4.5, "C1")
    assert [(s.name, s.cefr) for s in itep.result.sections][:2] == [("grammar", "B2"), ("listening", "C1")]

    assert inspera.status is Status.COMPLETED and inspera.occurred_at is not None
    assert inspera.exam is not None and inspera.exam.test_id == "4242"

    assert synap.status is Status.RELEASED and synap.vendor_event == "exam.resultsReleased"
    assert synap.candidate is not None and synap.candidate.email == "ada@example.com"
    assert synap.result is not None and synap.result.grade is not None and synap.result.grade.label == "Merit"

    assert testpress.status is Status.COMPLETED
    assert testpress.result is not None and (testpress.result.score, testpress.result.percent) == (87.5, 62.0)

    raws = await router.pool.fetch("SELECT id::text, source, outcome FROM raw_webhooks")
    assert {(r["id"], r["outcome"]) for r in raws} == {(i, "accepted") for i in answered.values()}
    exams = await router.pool.fetch("SELECT vendor, exam_key, status, event_id::text FROM exams")
    assert {(r["vendor"], r["status"], r["event_id"]) for r in exams} == {
        (e.vendor.value, e.type, e.id) for e in events.values()
    }
    stored = await router.pool.fetch("SELECT payload FROM events")
    assert {json.loads(r["payload"])["id"] for r in stored} == {e.id for e in events.values()}


async def test_the_same_call_twice_is_one_event(
    pipeline: tuple[TestClient[web.Request, web.Application], RunningRouter],
) -> None:
    client, router = pipeline
    [(_, source, body, headers)] = [r for r in samples.demo_requests(demo_secrets(), 77) if r[0] == "itep"]
    ids = []
    for _ in range(2):  # the vendor did not see our first 200 and sends it again
        response = await client.post(f"/hooks/{source}", data=body, headers=headers)
        assert response.status == 200
        ids.append((await response.json())["id"])
    await router.raw_stored(2)
    [event] = await router.events(1)
    await router.no_more_events()
    assert event.webhook_id == ids[0] and ids[0] != ids[1]
    assert await router.pool.fetchval("SELECT count(*) FROM events") == 1
