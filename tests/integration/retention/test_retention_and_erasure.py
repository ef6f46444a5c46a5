"""Retention and erasure against the real database and broker (the router stores real webhooks)."""

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from admin.app import create_app
from common.broker import declare_results
from common.db import create_pool
from common.itep.orders import create_order
from common.settings import WorkerSettings
from devkit import samples
from schemas.delivery import Attempt
from schemas.erasure import ERASURE_COMPLETED_KEY
from schemas.itep_order import OrderRequest
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.pipeline import running_router
from tests.support.services import scratch_queue_name
from workers.migrate import migrate
from workers.retention.erasure import Erasures
from workers.retention.purge import Retention
from workers.retention.settings import RetentionSettings
from workers.retention.subject import Subject, body_concerns, needles, pg_escape

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class NoTasks:
    async def now_all(self, tasks: Sequence[Attempt]) -> None:
        raise AssertionError("no replay here")


@pytest.fixture
async def pool(database_url: str, db_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(WorkerSettings(database_url=database_url, database_schema=db_schema))
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


# -- retention -------------------------------------------------------------------------------------


async def _raw(pool: asyncpg.Pool, stored_at: datetime, outcome: str = "accepted") -> str:
    raw_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, outcome, reason,"
        " stored_at) VALUES ($1, 's', 'synap', $2, 'application/json', $3, $4, $5, $2)",
        raw_id,
        stored_at,
        b'{"user": {"email": "old@example.com"}}',
        outcome,
        "bad" if outcome == "rejected" else None,
    )
    return raw_id


async def _event(pool: asyncpg.Pool, webhook_id: str, stored_at: datetime, exam: str, current: bool) -> str:
    event_id = str(uuid.uuid4())
    payload = {
        "id": event_id,
        "type": "completed",
        "vendor": "synap",
        "source": "s",
        "webhook_id": webhook_id,
        "vendor_event": "x",
        "received_at": stored_at.isoformat(),
        "status": "completed",
        "exam": {"key": exam},
        "candidate": {"email": "old@example.com", "name": "Olive Old"},
        "result": {"score": 50},
        "attributes": {"proctor_status": "flagged"},
    }
    await pool.execute(
        "INSERT INTO events (id, vendor, natural_key, webhook_id, type, status, exam_key, received_at,"
        " payload, stored_at) VALUES ($1::uuid, 'synap', $1::text, $2, 'completed', 'completed', $3, $4, $5::jsonb, $4)",
        event_id,
        webhook_id,
        exam,
        stored_at,
        json.dumps(payload),
    )
    if current:
        await pool.execute(
            "INSERT INTO exams (vendor, exam_key, status, event_id, candidate) VALUES"
            " ('synap', $1, 'completed', $2, '{\"email\": \"old@example.com\"}')",
            exam,
            event_id,
        )
    return event_id


async def _delivery(pool: asyncpg.Pool, subscription_id: str, updated_at: datetime, status: str) -> str:
    delivery_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, attempts, last_error,"
        " updated_at) VALUES ($1, $2, gen_random_uuid(), 'completed', $3, 1, 'HTTP 500: nope', $4)",
        delivery_id,
        subscription_id,
        status,
        updated_at,
    )
    await pool.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error,"
        " outcome) VALUES ($1, 1, $2, 500, 3.0, 'HTTP 500: nope', 'failed')",
        delivery_id,
        updated_at,
    )
    return delivery_id


async def _subscription(pool: asyncpg.Pool) -> str:
    endpoint = await pool.fetchval("INSERT INTO endpoints (url) VALUES ('http://127.0.0.1:1/') RETURNING id")
    subscription_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO subscriptions (id, url, endpoint_id) VALUES ($1, 'http://127.0.0.1:1/', $2)",
        subscription_id,
        endpoint,
    )
    return subscription_id


RETAIN = RetentionSettings(
    raw=30 * 86400, rejected=90 * 86400, events=365 * 86400, deliveries=90 * 86400, batch=2
)


async def _world(pool: asyncpg.Pool) -> dict[str, str]:
    ids: dict[str, str] = {}
    ids["raw_old"] = await _raw(pool, NOW - 31 * DAY)
    ids["raw_new"] = await _raw(pool, NOW - 29 * DAY)
    ids["raw_old_2"] = await _raw(pool, NOW - 40 * DAY)
    ids["raw_old_3"] = await _raw(pool, NOW - 50 * DAY)  # more than one batch
    ids["rejected_old"] = await _raw(pool, NOW - 91 * DAY, "rejected")
    ids["rejected_new"] = await _raw(pool, NOW - 60 * DAY, "rejected")  # past the raw period, not its own
    ids["event_old_current"] = await _event(pool, ids["raw_old"], NOW - 400 * DAY, "E1", current=True)
    ids["event_old"] = await _event(pool, ids["raw_old"], NOW - 366 * DAY, "E2", current=False)
    ids["event_new"] = await _event(pool, ids["raw_new"], NOW - 364 * DAY, "E3", current=True)
    sub = await _subscription(pool)
    ids["delivery_old"] = await _delivery(pool, sub, NOW - 91 * DAY, "failed")
    ids["delivery_old_pending"] = await _delivery(pool, sub, NOW - 91 * DAY, "pending")
    ids["delivery_new"] = await _delivery(pool, sub, NOW - 89 * DAY, "succeeded")
    return ids


async def test_retention_tombstones_exactly_what_is_past_its_period(pool: asyncpg.Pool) -> None:
    ids = await _world(pool)
    counts = await Retention(RETAIN, pool, clock=lambda: NOW).round()
    assert counts["raw"] == {"deleted": 0, "tombstoned": 3}
    assert counts["rejected"] == {"deleted": 0, "tombstoned": 1}
    assert counts["events"] == {"deleted": 0, "tombstoned": 2}
    assert counts["deliveries"] == {"deleted": 0, "tombstoned": 1}

    raws = {str(r["id"]): r for r in await pool.fetch("SELECT * FROM raw_webhooks")}
    purged = {k for k in ("raw_old", "raw_old_2", "raw_old_3", "rejected_old")}
    for name, raw_id in ids.items():
        if raw_id not in raws:
            continue
        row = raws[raw_id]
        if name in purged:
            assert bytes(row["body"]) == b"" and row["purged_by"] == "retention", name
            assert row["outcome"] in ("accepted", "rejected") and row["received_at"] is not None
        else:
            assert bytes(row["body"]).startswith(b'{"user"') and row["purged_at"] is None, name
    assert raws[ids["rejected_old"]]["reason"] == "removed by retention"
    assert raws[ids["rejected_new"]]["reason"] == "bad"

    events = {str(r["id"]): r for r in await pool.fetch("SELECT id, payload::text, purged_at FROM events")}
    for name in ("event_old_current", "event_old"):
        payload = json.loads(events[ids[name]]["payload"])
        assert not {"candidate", "result", "attributes"} & set(payload), name
        assert payload["status"] == "completed" and payload["exam"]["key"] and payload["id"] == ids[name]
    assert "old@example.com" in events[ids["event_new"]]["payload"]
    # The exams' current state is never purged.
    exams = await pool.fetch("SELECT exam_key, status, candidate FROM exams ORDER BY exam_key")
    assert [(e["exam_key"], e["status"]) for e in exams] == [("E1", "completed"), ("E3", "completed")]

    deliveries = {
        str(r["id"]): r for r in await pool.fetch("SELECT id, last_error, purged_at FROM deliveries")
    }
    assert deliveries[ids["delivery_old"]]["last_error"] is None
    assert deliveries[ids["delivery_old_pending"]]["last_error"] == "HTTP 500: nope"  # still being delivered
    assert deliveries[ids["delivery_new"]]["last_error"] == "HTTP 500: nope"
    errors = {
        str(r["delivery_id"]): r["error"]
        for r in await pool.fetch("SELECT delivery_id, error, outcome, status_code FROM delivery_attempts")
    }
    assert errors[ids["delivery_old"]] is None and errors[ids["delivery_new"]] == "HTTP 500: nope"

    # A second round finds nothing more.
    again = await Retention(RETAIN, pool, clock=lambda: NOW).round()
    assert all(c == {"deleted": 0, "tombstoned": 0} for c in again.values())


async def test_retention_told_to_drop_the_audit_trail_keeps_the_current_state(pool: asyncpg.Pool) -> None:
    ids = await _world(pool)
    settings = msgspec.structs.replace(RETAIN, drop_audit=True)
    counts = await Retention(settings, pool, clock=lambda: NOW).round()
    # Events first would free raw_old; the round order is raw first, so it stays a tombstone.
    assert counts["events"] == {"deleted": 1, "tombstoned": 1}  # the current event of E1 stays
    assert counts["deliveries"] == {"deleted": 1, "tombstoned": 0}
    left = {str(r["id"]) for r in await pool.fetch("SELECT id FROM raw_webhooks")}
    assert ids["raw_old"] in left  # events still come from it
    assert ids["raw_old_2"] not in left and ids["raw_old_3"] not in left and ids["rejected_old"] not in left
    assert ids["raw_new"] in left and ids["rejected_new"] in left
    events = {str(r["id"]) for r in await pool.fetch("SELECT id FROM events")}
    assert events == {ids["event_old_current"], ids["event_new"]}
    assert await pool.fetchval("SELECT count(*) FROM exams") == 2
    deliveries = {str(r["id"]) for r in await pool.fetch("SELECT id FROM deliveries")}
    assert deliveries == {ids["delivery_old_pending"], ids["delivery_new"]}


# -- finding a candidate in raw bodies (pure) --------------------------------------------------------


def test_a_raw_body_is_found_in_every_encoding_the_vendors_use() -> None:
    email = "Zoë.Example@Example.com"
    subject = Subject("email", email.lower())
    bodies = [
        samples.as_json({"user": {"email": email}}),
        json.dumps({"user": {"email": email}}, ensure_ascii=False).encode(),
        samples.itep_urlencoded({"OID": "x", "TestID": "T", "Status": "Complete", "Email": email})[0],
    ]
    for body in bodies:
        text = pg_escape(body).lower()
        assert any(n in text for n in needles(email.lower())), body
    assert body_concerns(subject, "synap", "application/json", bodies[0], None)
    urlencoded, form = samples.itep_urlencoded({"OID": "x", "TestID": "T", "Status": "Complete", "E": email})
    assert body_concerns(subject, "itep", form, urlencoded, None)
    # A vendor id counts only where the vendor's normalizer says it names the candidate...
    testpress = samples.as_json(samples.testpress(attempt_id=27))
    assert body_concerns(Subject("candidate_id", "918"), "testpress", "application/json", testpress, None)
    assert not body_concerns(Subject("candidate_id", "27"), "testpress", "application/json", testpress, None)
    # ...or, in a body nothing can read, where it is a whole token.
    assert body_concerns(
        Subject("candidate_id", "u-77"), "synap", "application/json", b'{"id": "u-77", ', None
    )
    assert not body_concerns(
        Subject("candidate_id", "u-7"), "synap", "application/json", b'{"id": "u-77", ', None
    )


# -- erasure -------------------------------------------------------------------------------------------

ADA_EMAIL = "ada.lovelace@example.com"
ADA_NAME = "Ada Lovelace-Example"
BOB_EMAIL = "bob.builder@example.com"


def _synap(
    attempt: str, email: str, name: str, user_id: str, timestamp: str = "2024-05-02T10:15:00.000Z"
) -> bytes:
    body = samples.synap_released(attempt_id=attempt, timestamp=timestamp)
    body["user"] = {**body["user"], "email": email, "name": name, "id": user_id}
    return samples.as_json(body)


def _testpress(attempt: int, email: str) -> bytes:
    body = samples.testpress(attempt_id=attempt)
    body["email"] = email
    body["username"] = email.split("@")[0]
    return samples.as_json(body)


async def _store_fixtures(amqp_url: str, database_url: str, topology: Topology, schema: str) -> None:
    async with running_router(amqp_url, database_url, topology, schema) as router:
        webhooks = [
            samples.envelope(
                Vendor.SYNAP, _synap("att-1", ADA_EMAIL, ADA_NAME, "u-ada"), event="exam.resultsReleased"
            ),
            # The same result sent twice: one event, two raw webhooks.
            samples.envelope(
                Vendor.SYNAP, _synap("att-1", ADA_EMAIL, ADA_NAME, "u-ada"), event="exam.resultsReleased"
            ),
            samples.envelope(Vendor.TESTPRESS, _testpress(7001, ADA_EMAIL.upper())),
            # Rejected (a timestamp that is no time): no event, only the raw body names her.
            samples.envelope(
                Vendor.SYNAP,
                _synap("att-2", ADA_EMAIL, ADA_NAME, "u-ada", timestamp="yesterday"),
                event="exam.resultsReleased",
            ),
            samples.envelope(
                Vendor.SYNAP, _synap("att-3", BOB_EMAIL, "Bob Builder", "u-bob"), event="exam.resultsReleased"
            ),
            samples.envelope(Vendor.TESTPRESS, _testpress(7002, BOB_EMAIL)),
        ]
        for envelope in webhooks:
            await router.publish_raw(envelope)
        await router.raw_stored(len(webhooks))
        await router.events(4)


async def _traces(pool: asyncpg.Pool, value: str) -> list[str]:
    """Every column of every table of the schema that holds `value` (text, JSON, or bytes in any form
    the vendors encode it), as `table.column`."""
    columns = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND data_type IN"
        " ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')"
    )
    found = []
    forms = needles(value.lower())
    for c in columns:
        column = f'"{c["column_name"]}"'
        text = f"lower(encode({column}, 'escape'))" if c["data_type"] == "bytea" else f"lower({column}::text)"
        hits = await pool.fetchval(
            f'SELECT count(*) FROM "{c["table_name"]}" WHERE EXISTS'
            f" (SELECT 1 FROM unnest($1::text[]) n(s) WHERE strpos({text}, n.s) > 0)",
            forms,
        )
        if hits:
            found.append(f"{c['table_name']}.{c['column_name']}")
    return found


async def _erase(client: TestClient, erasures: Erasures, **request: Any) -> dict[str, Any]:
    answer = await client.post("/v1/erasures", json={"requested_by": "dpo@example.org", **request})
    assert answer.status == 202, await answer.text()
    record = await answer.json()
    assert record["status"] == "pending"
    assert await erasures.work_once()
    shown = await client.get(f"/v1/erasures/{record['id']}")
    assert shown.status == 200
    result: dict[str, Any] = await shown.json()
    return result


async def _state(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    exams = await pool.fetch("SELECT vendor, exam_key, status, event_id FROM exams ORDER BY vendor, exam_key")
    counts = [await pool.fetchval(f"SELECT count(*) FROM {t}") for t in ("raw_webhooks", "events", "exams")]
    return [tuple(e) for e in exams] + [tuple(counts)]


@pytest.fixture
async def erasure_world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[tuple[asyncpg.Pool, TestClient, Erasures, aio_pika.abc.AbstractQueue]]:
    await _store_fixtures(amqp_url, database_url, topology, db_schema)
    pool = await create_pool(WorkerSettings(database_url=database_url, database_schema=db_schema))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        results = await declare_results(channel, topology)
        probe = await channel.declare_queue(scratch_queue_name(topology, "erasures"), durable=False)
        await probe.bind(results, routing_key="resultbus.erasure.#")
        app = create_app(pool, NoTasks(), token=None, allow_private=True)
        async with TestClient(TestServer(app)) as client:
            yield pool, client, Erasures(RetentionSettings(batch=2), pool, results), probe
    finally:
        await connection.close()
        await pool.close()


async def test_an_erasure_leaves_no_trace_of_the_candidate_and_keeps_the_state(
    erasure_world: tuple[asyncpg.Pool, TestClient, Erasures, aio_pika.abc.AbstractQueue],
) -> None:
    pool, client, erasures, probe = erasure_world
    # She also had an iTEP test ID ordered for her (placed through the admin API's store).
    first, last = ADA_NAME.split(" ")
    order_request = OrderRequest(
        reference="erasure-test-1",
        product_code="STX-Academic-Plus",
        email=ADA_EMAIL,
        registration={"First_Name": first, "Last_Name": last, "Birthday": "7/8/1995"},
    )
    async with pool.acquire() as conn:
        order, _ = await create_order(conn, order_request, [])
    assert await _traces(pool, ADA_EMAIL) and await _traces(pool, ADA_NAME)
    before = await _state(pool)

    record = await _erase(client, erasures, email=ADA_EMAIL)

    assert record["status"] == "completed" and record["requested_by"] == "dpo@example.org"
    assert record["counts"] == {
        "raw_webhooks": 4,  # both copies of the Synap result, Testpress, the rejected one
        "events": 2,
        "exams": 2,
        "deliveries": 0,
        "itep_orders": 1,
    }
    assert record["touched"]["itep_orders"] == [order.id]
    assert ADA_EMAIL not in json.dumps(record).lower()
    assert await _traces(pool, ADA_EMAIL) == []
    assert await _traces(pool, ADA_NAME) == []
    # Her Synap id stays only where it is part of a key (the tombstones keep ids), never in content.
    assert set(await _traces(pool, "u-ada")) <= {"events.natural_key", "events.exam_key", "exams.exam_key"}
    # The state and the counts are as they were; Bob is untouched.
    assert await _state(pool) == before
    assert set(await _traces(pool, BOB_EMAIL)) == {"raw_webhooks.body", "events.payload", "exams.candidate"}
    bob_bodies = "SELECT count(*) FROM raw_webhooks WHERE position(convert_to($1, 'UTF8') in body) > 0"
    assert await pool.fetchval(bob_bodies, BOB_EMAIL) == 2
    assert await pool.fetchval("SELECT count(*) FROM events WHERE payload::text LIKE '%bob.builder%'") == 2
    exams = await pool.fetch("SELECT candidate, result, erased_at FROM exams WHERE erased_at IS NOT NULL")
    assert len(exams) == 2 and all(e["candidate"] is None and e["result"] is None for e in exams)

    message = await probe.get(timeout=5)
    published = json.loads(message.body)
    assert message.routing_key == ERASURE_COMPLETED_KEY
    assert published["erasure_id"] == record["id"] and sorted(published["event_ids"]) == sorted(
        record["touched"]["events"]
    )
    assert ADA_EMAIL not in message.body.decode().lower()

    # Idempotent: again, nothing more to touch, and the same state.
    again = await _erase(client, erasures, email=ADA_EMAIL.upper(), vendor="synap")
    assert again["status"] == "completed" and set(again["counts"].values()) == {0}
    assert await _state(pool) == before


async def test_an_erasure_by_external_id_and_its_request_rules(
    erasure_world: tuple[asyncpg.Pool, TestClient, Erasures, aio_pika.abc.AbstractQueue],
) -> None:
    pool, client, erasures, _ = erasure_world
    # Two identifiers, or none, are refused.
    for body in ({"email": ADA_EMAIL, "external_id": "x"}, {}):
        answer = await client.post("/v1/erasures", json={"requested_by": "dpo", **body})
        assert answer.status == 422
    assert (await client.get(f"/v1/erasures/{uuid.uuid4()}")).status == 404
    record = await _erase(client, erasures, candidate_id="u-bob", vendor="synap")
    assert record["counts"]["events"] == 1 and record["counts"]["raw_webhooks"] == 1
    assert await _traces(pool, "Bob Builder") == []
    assert await _traces(pool, BOB_EMAIL)  # his Testpress result names him by email only: not asked
