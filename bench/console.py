"""`python -m bench console`: how fast the console's pages load with 100,000 events stored.

A database of its own is seeded in bulk (COPY) with a realistic spread: webhooks over the last week,
three events per exam, a few per cent rejected, two subscriptions with a delivery and an attempt per
event. The admin app (API and console) then runs in this process on a real listener over the real
broker and database, and each page is fetched sequentially (warm-up first): p50/p95 per page, with
the target of 200 ms. `--without-indexes` drops the console's indexes (migrations 008 and 011) first,
to show what each buys. Half the rejected webhooks are bodies that name their exam (a Synap body
rejected for a rule), the other half cannot be read at all.
"""

import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika
import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from admin import console
from admin.app import create_app
from bench.world import AMQP_URL, DATABASE_URL, BenchError, world
from common import inventory
from common.broker import declare_raw, declare_tiers
from common.db import create_pool
from common.settings import RETRY_DELAYS, WorkerSettings
from schemas.topology import tiers_ms
from schemas.vendor import Vendor
from subscribers.queues import TaskPublisher, declare_attempts_queue
from workers.migrate import migrate

TARGET_MS = 200.0
TOKEN = "bench-console-token-0123456789"
CONSOLE_INDEXES = (
    # 008
    "events_candidate_email",
    "events_candidate_external_id",
    "events_test_id",
    "raw_webhooks_received",
    # 011
    "raw_webhooks_rejected_keys",
    "raw_webhooks_rejected_arrival",
)
VENDORS = [v.value for v in Vendor]


@dataclass
class PageResult:
    page: str
    p50_ms: float
    p95_ms: float
    bytes: int


def _body(i: int) -> bytes:
    return json.dumps(
        {
            "user": {"id": f"user-{i // 3}", "name": "Ada Example", "email": f"cand{i // 3}@example.com"},
            "meta": {"timestamp": "2024-05-02T10:15:00.000Z", "eventName": "exam.resultsReleased"},
            "attempt": {"id": f"att-{i // 3}", "score": 72.5, "grade": {"label": "Merit", "isPass": True}},
            "test": {"id": f"test-{i % 50}", "title": "Final Maths"},
            "notes": "x" * 300,
        }
    ).encode()


def _rejected_body(j: int) -> bytes:
    return json.dumps(
        {
            "user": {"id": f"rej-user-{j}", "name": "Ada Example", "email": f"rej{j}@example.com"},
            "meta": {"timestamp": "2024-05-02T10:15:00.000Z", "eventName": "exam.resultsReleased"},
            "attempt": {"id": f"rej-att-{j}", "score": 72.5, "scoreFrac": 7.25},
            "test": {"id": f"rej-test-{j}", "title": "Final Maths"},
            "notes": "x" * 300,
        }
    ).encode()


def _payload(i: int, event_id: str, webhook_id: str, vendor: str, at: datetime) -> str:
    return json.dumps(
        {
            "schema": "resultbus.result-event/v1",
            "id": event_id,
            "type": "completed",
            "vendor": vendor,
            "source": f"{vendor}-main",
            "webhook_id": webhook_id,
            "vendor_event": "completed",
            "received_at": at.isoformat(),
            "status": "completed",
            "exam": {"key": f"exam-{i // 3}", "test_id": f"T{i // 3:07d}", "title": "Final Maths"},
            "candidate": {
                "id": f"user-{i // 3}",
                "external_id": f"cand-{i // 3:06d}",
                "email": f"cand{i // 3}@example.com",
                "name": "Ada Example",
            },
            "result": {"score": 72.5, "percent": 72.5, "sections": [{"name": "Reading", "score": 80}]},
        }
    )


async def seed(conn: asyncpg.Connection, events: int, rejected_share: float = 0.03) -> dict[str, str]:
    now = datetime.now(UTC)
    week = timedelta(days=7).total_seconds()
    raw, evs, exams, deliveries, attempts = [], [], {}, [], []
    subs = [str(uuid.uuid4()) for _ in range(2)]
    for s, sub in enumerate(subs):
        endpoint = await conn.fetchval(
            "INSERT INTO endpoints (url, last_checked_at) VALUES ($1, now()) RETURNING id",
            f"https://s{s}.example.com/hook",
        )
        await conn.execute(
            "INSERT INTO subscriptions (id, url, endpoint_id, description) VALUES ($1, $2, $3, $4)",
            sub,
            f"https://s{s}.example.com/hook",
            endpoint,
            f"school {s}",
        )
    for i in range(events):
        vendor = VENDORS[(i // 3) % len(VENDORS)]  # an exam's three events come from one vendor
        at = now - timedelta(seconds=week * (events - i) / events)
        webhook_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
        body = _body(i)
        raw.append(
            (
                webhook_id,
                f"{vendor}-main",
                vendor,
                at,
                "application/json",
                body,
                None,
                "192.0.2.1",
                "accepted",
                None,
                at,
            )
        )
        evs.append(
            (
                event_id,
                vendor,
                f"nk-{i}",
                webhook_id,
                "completed",
                "completed",
                f"exam-{i // 3}",
                at,
                at,
                True,
                _payload(i, event_id, webhook_id, vendor, at),
                at,
            )
        )
        exams[(vendor, f"exam-{i // 3}")] = (vendor, f"exam-{i // 3}", "completed", at, event_id, at)
        for sub in subs:
            delivery_id = str(uuid.uuid4())
            failed = i % 40 == 0
            status = "failed" if failed else "succeeded"
            deliveries.append(
                (
                    delivery_id,
                    sub,
                    event_id,
                    "completed",
                    status,
                    1,
                    500 if failed else 200,
                    "HTTP 500" if failed else None,
                    at,
                    at,
                )
            )
            attempts.append(
                (
                    delivery_id,
                    1,
                    at,
                    500 if failed else 200,
                    12.0,
                    "HTTP 500" if failed else None,
                    "failed" if failed else "succeeded",
                )
            )
    rejected_named = None
    for j in range(int(events * rejected_share)):
        at = now - timedelta(seconds=week * j / (events * rejected_share))
        if j % 2:
            # A body that names its exam, rejected for a rule (as a Synap attempt with a bad score).
            vendor, body, reason = (
                "synap",
                _rejected_body(j),
                "synap: `attempt.scoreFrac` 7.25 is not within 0 and 1",
            )
        else:
            vendor, body, reason = VENDORS[(j // 2) % len(VENDORS)], b'{"broken": ', "body: not JSON"
        row = (
            str(uuid.uuid4()),
            f"{vendor}-main",
            vendor,
            at,
            "application/json",
            body,
            None,
            "192.0.2.1",
            "rejected",
            reason,
            at,
        )
        raw.append(row)
        if j == int(events * rejected_share) // 2 + 1:
            rejected_named = (row[0], j)
    await conn.copy_records_to_table(
        "raw_webhooks",
        records=raw,
        columns=[
            "id",
            "source",
            "vendor",
            "received_at",
            "content_type",
            "body",
            "vendor_event",
            "remote",
            "outcome",
            "reason",
            "stored_at",
        ],
    )
    await conn.copy_records_to_table(
        "events",
        records=evs,
        columns=[
            "id",
            "vendor",
            "natural_key",
            "webhook_id",
            "type",
            "status",
            "exam_key",
            "occurred_at",
            "received_at",
            "applied",
            "payload",
            "stored_at",
        ],
    )
    await conn.copy_records_to_table(
        "exams",
        records=list(exams.values()),
        columns=["vendor", "exam_key", "status", "occurred_at", "event_id", "updated_at"],
    )
    await conn.copy_records_to_table(
        "deliveries",
        records=deliveries,
        columns=[
            "id",
            "subscription_id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "last_status",
            "last_error",
            "created_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "delivery_attempts",
        records=attempts,
        columns=["delivery_id", "attempt", "attempted_at", "status_code", "latency_ms", "error", "outcome"],
    )
    await conn.execute("ANALYZE")
    middle = events // 2
    assert rejected_named is not None
    return {
        "rejected_webhook": rejected_named[0],
        "rejected_test_id": f"rej-test-{rejected_named[1]}",
        "rejected_key": f"attempt:rej-att-{rejected_named[1]}",
        "subscription": subs[0],
        "webhook": raw[middle][0],
        "email": f"cand{middle // 3}@example.com",
        "external_id": f"cand-{middle // 3:06d}",
        "test_id": f"T{middle // 3:07d}",
        "vendor": VENDORS[(middle // 3) % len(VENDORS)],
        "key": f"exam-{middle // 3}",
    }


async def _time_page(
    http: aiohttp.ClientSession, url: str, expect: str, rounds: int, warmup: int
) -> tuple[list[float], int]:
    times, size = [], 0
    for n in range(warmup + rounds):
        started = time.perf_counter()
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            body = await response.read()
            if response.status != 200:
                raise BenchError(f"{url}: HTTP {response.status}: {body[:300]!r}")
            if expect.encode() not in body:
                raise BenchError(f"{url}: the page lacks {expect!r}: the seed or the page is wrong")
        if n >= warmup:
            times.append((time.perf_counter() - started) * 1000)
        size = len(body)
    return times, size


async def run(
    events: int = 100_000, rounds: int = 30, warmup: int = 3, without_indexes: bool = False
) -> list[PageResult]:
    async with world() as w:
        settings = WorkerSettings(
            amqp_url=AMQP_URL, topology=w.topology, database_url=DATABASE_URL, database_schema=w.schema
        )
        pool = await create_pool(settings)
        try:
            async with pool.acquire() as conn:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{w.schema}"')
                await migrate(conn)
                if without_indexes:
                    for name in CONSOLE_INDEXES:
                        await conn.execute(f"DROP INDEX IF EXISTS {name}")
                started = time.perf_counter()
                found = await seed(conn, events)
                seeded = time.perf_counter() - started
            connection = await aio_pika.connect(AMQP_URL)
            try:
                channel = await connection.channel(publisher_confirms=True)
                await declare_raw(channel, w.topology)
                await declare_tiers(channel, w.topology.raw, tiers_ms(RETRY_DELAYS.default))
                await declare_attempts_queue(channel, w.topology)
                app = create_app(pool, TaskPublisher(channel, w.topology), token=TOKEN, allow_private=True)
                console.attach_broker(app, connection, w.topology, inventory.queues_of(w.topology, {}))
                server = TestServer(app, host="127.0.0.1")
                await server.start_server()
                try:
                    base = str(server.make_url("/console")).rstrip("/")
                    pages = _pages(found)
                    results = []
                    async with aiohttp.ClientSession() as http:
                        for label, path, expect in pages:
                            times, size = await _time_page(http, base + path, expect, rounds, warmup)
                            results.append(PageResult(label, statistics.median(times), _p95(times), size))
                finally:
                    await server.close()
            finally:
                await connection.close()
        finally:
            await pool.close()
    print(f"(seeded {events:,} events in {seeded:.1f} s)")
    return results


def _pages(found: dict[str, str]) -> Sequence[tuple[str, str, str]]:
    """(label, path, a text the page must hold: proof that it found what it was asked for)."""
    exam_link = f"/console/exam?vendor={found['vendor']}&amp;key={found['key']}"
    return [
        ("overview", "/", "Webhooks received"),
        ("find: email", f"/exams?by=email&q={found['email']}", exam_link),
        ("find: external id", f"/exams?by=external_id&q={found['external_id']}", exam_link),
        ("find: test id", f"/exams?by=test_id&q={found['test_id']}", exam_link),
        ("find: exam key", f"/exams?by=key&q={found['key']}", exam_link),
        ("exam + history", f"/exam?vendor={found['vendor']}&key={found['key']}", "History (3 events"),
        ("webhook", f"/webhooks/{found['webhook']}", found["key"]),
        (
            "find: rejected only",
            f"/exams?by=test_id&q={found['rejected_test_id']}",
            found["rejected_webhook"],
        ),
        (
            "exam: rejected only",
            f"/exam?vendor=synap&key={found['rejected_key']}",
            found["rejected_webhook"],
        ),
        ("rejected webhook", f"/webhooks/{found['rejected_webhook']}", found["rejected_key"]),
        ("rejected", "/rejected", "not JSON"),
        ("rejected, a source", f"/rejected?source={found['vendor']}-main", "not JSON"),
        (
            "rejected, by test id",
            f"/rejected?by=test_id&q={found['rejected_test_id']}",
            found["rejected_webhook"],
        ),
        ("dead letters", "/dead", "Dead letters"),
        ("subscriptions", "/subscriptions", "school 0"),
        ("subscription", f"/subscriptions/{found['subscription']}", "HTTP 500"),
        ("subscription failed", f"/subscriptions/{found['subscription']}?status=failed", "HTTP 500"),
    ]


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(results: list[PageResult], events: int, without_indexes: bool) -> list[str]:
    lines = [
        "",
        f"console: page loads with {events:,} events stored"
        f"{' (WITHOUT the indexes of migrations 008 and 011)' if without_indexes else ''}, sequential,"
        " client in-process",
        f"{'page':>22} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}  target",
    ]
    for r in results:
        verdict = "PASS" if r.p95_ms < TARGET_MS else "FAIL"
        lines.append(
            f"{r.page:>22} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.bytes / 1024:>6.1f}  {verdict} (< {TARGET_MS:.0f} ms)"
        )
    return lines
