"""The router against the real RabbitMQ and PostgreSQL: raw envelope in, rows and events out."""

import json
from datetime import UTC, datetime, timedelta

from devkit import samples
from schemas.envelope import RawEnvelope
from schemas.event import Status
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.pipeline import running_router


async def test_each_vendor_is_stored_and_published(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    itep_body, itep_type = samples.itep_multipart(samples.ITEP_COMPLETE)
    envelopes = [
        samples.envelope(Vendor.ITEP, itep_body, content_type=itep_type),
        samples.envelope(Vendor.INSPERA, samples.as_json(samples.inspera())),
        samples.envelope(
            Vendor.SYNAP, samples.as_json(samples.synap_released()), event="exam.resultsReleased"
        ),
        samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())),
    ]
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        for env in envelopes:
            await router.publish_raw(env)
        events = await router.events(4)
        await router.no_more_events()

        by_vendor = {e.vendor: e for e in events}
        assert set(by_vendor) == set(Vendor)
        assert [m.routing_key for m in router.received[:4]] == [f"{e.vendor.value}.{e.type}" for e in events]
        assert all(m.message_id == e.id for m, e in zip(router.received, events, strict=False))
        assert by_vendor[Vendor.ITEP].status is Status.COMPLETED
        assert by_vendor[Vendor.SYNAP].status is Status.RELEASED
        assert (
            by_vendor[Vendor.TESTPRESS].result is not None
            and by_vendor[Vendor.TESTPRESS].result.score == 87.5
        )

        raws = await router.pool.fetch("SELECT id::text, outcome, body FROM raw_webhooks")
        assert {(r["id"], r["outcome"]) for r in raws} == {(e.id, "accepted") for e in envelopes}
        assert {bytes(r["body"]) for r in raws} == {e.body for e in envelopes}  # byte for byte

        rows = await router.pool.fetch("SELECT id::text, applied, payload FROM events")
        assert {r["id"] for r in rows} == {e.id for e in events}
        assert all(r["applied"] for r in rows)
        stored_itep = json.loads(next(r["payload"] for r in rows if r["id"] == by_vendor[Vendor.ITEP].id))
        assert (
            stored_itep["result"]["cefr"] == "C1" and stored_itep["candidate"]["external_id"] == "cand-0042"
        )

        exams = {
            (r["vendor"], r["exam_key"]): r
            for r in await router.pool.fetch("SELECT vendor, exam_key, status, result FROM exams")
        }
        itep_exam = exams[("itep", "3279B035APR")]
        assert itep_exam["status"] == "completed" and json.loads(itep_exam["result"])["level"] == 4.5
        assert exams[("synap", "attempt:att-9001")]["status"] == "released"
        assert exams[("testpress", "attempt:4512")]["status"] == "completed"
        assert exams[("inspera", "ASSESSMENT_RUN:74379551/CANDIDATE:5550101")]["status"] == "completed"


async def test_the_same_webhook_twice_is_one_event(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    body = samples.as_json(samples.testpress())
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        first = samples.envelope(Vendor.TESTPRESS, body)
        again = samples.envelope(Vendor.TESTPRESS, body)  # the vendor retried: a new webhook id
        await router.publish_raw(first)
        await router.publish_raw(again)
        await router.publish_raw(first)  # and a redelivery of the very same envelope
        await router.raw_stored(2)
        [event] = await router.events(1)
        await router.no_more_events()
        assert event.webhook_id == first.id
        assert await router.pool.fetchval("SELECT count(*) FROM raw_webhooks") == 2
        assert await router.pool.fetchval("SELECT count(*) FROM events") == 1


async def test_undecodable_webhook_is_stored_as_rejected_and_acked(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        bad = samples.envelope(Vendor.SYNAP, b'{"meta": {"timestamp": 5}}', event="exam.completed")
        good = samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress()))
        await router.publish_raw(bad)
        await router.publish_raw(good)
        await router.events(1)
        await router.raw_stored(2)
        row = await router.pool.fetchrow("SELECT outcome, reason FROM raw_webhooks WHERE id = $1", bad.id)
        assert row["outcome"] == "rejected"
        assert "synap" in row["reason"] and "$.meta.timestamp" in row["reason"]
        # Acked, not requeued: the raw queue is empty.
        queue = await router.channel.declare_queue(router.settings.topology.raw_queue, passive=True)
        assert queue.declaration_result.message_count == 0


async def test_a_message_that_is_not_an_envelope_is_kept(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    import aio_pika

    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        await router.raw_exchange.publish(aio_pika.Message(b"\xc1garbage"), routing_key="itep.x")
        await router.raw_stored(1)
        row = await router.pool.fetchrow("SELECT vendor, outcome, reason, body FROM raw_webhooks")
        assert (row["vendor"], row["outcome"], bytes(row["body"])) == ("unknown", "rejected", b"\xc1garbage")
        assert row["reason"].startswith("envelope:")


async def test_a_body_the_database_refuses_is_rejected_alone(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    # PostgreSQL's jsonb refuses \u0000; the rest of the batch must still land.
    poisoned = samples.itep("Complete", test_id="T\u0000X")
    body, content_type = samples.itep_urlencoded(poisoned)
    async with running_router(amqp_url, database_url, topology, db_schema, batch_size=50) as router:
        envs = [samples.envelope(Vendor.ITEP, body, content_type=content_type)]
        for n in range(5):
            b, t = samples.itep_urlencoded(samples.itep("Complete", test_id=f"T{n}"))
            envs.append(samples.envelope(Vendor.ITEP, b, content_type=t))
        for env in envs:
            await router.publish_raw(env)
        await router.events(5)
        await router.raw_stored(6)
        row = await router.pool.fetchrow("SELECT outcome, reason FROM raw_webhooks WHERE id = $1", envs[0].id)
        assert row["outcome"] == "rejected" and "database refused" in row["reason"]


async def test_exam_state_never_moves_back(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)

    def itep_env(status: str, minutes: int) -> RawEnvelope:
        # Duration differs per call: an identical body would be the same event, deduplicated.
        b, t = samples.itep_urlencoded(samples.itep(status, test_id="ORD1", Duration=str(60 + minutes)))
        return samples.envelope(Vendor.ITEP, b, content_type=t, received_at=t0 + timedelta(minutes=minutes))

    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        for env in (itep_env("Finished", 0), itep_env("Complete", 1), itep_env("Finished", 2)):
            await router.publish_raw(env)
            await router.events(len(router.received) + 1)
        state = await router.pool.fetchrow("SELECT status FROM exams WHERE exam_key = 'ORD1'")
        assert state["status"] == "completed"
        history = await router.pool.fetch(
            "SELECT status, applied FROM events WHERE exam_key = 'ORD1' ORDER BY stored_at"
        )
        assert [(r["status"], r["applied"]) for r in history] == [
            ("finished", True),
            ("completed", True),
            ("finished", False),
        ]
        # An invalidation does move it back.
        await router.publish_raw(itep_env("Invalidated", 3))
        await router.events(4)
        assert await router.pool.fetchval("SELECT status FROM exams WHERE exam_key = 'ORD1'") == "invalidated"
