"""The batch store against the real PostgreSQL, without a broker."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from devkit import samples
from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor
from workers.migrate import migrate
from workers.router.normalize import normalize
from workers.router.store import RawRow, store_batch


@pytest.fixture
async def conn(database_url: str, db_schema: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url, server_settings={"search_path": db_schema})
    await migrate(connection)
    yield connection
    await connection.close()


def itep_call(status: str, test_id: str) -> RawEnvelope:
    body, content_type = samples.itep_urlencoded(samples.itep(status, test_id=test_id))
    return samples.envelope(Vendor.ITEP, body, content_type=content_type)


async def test_within_one_batch_arrival_decides_where_the_vendor_gives_no_time(
    conn: asyncpg.Connection,
) -> None:
    # A reset, then a completion, in one batch: each exam ends completed, whatever order the event
    # ids happen to sort in.
    batch = [e for n in range(20) for e in (itep_call("Ready", f"B{n}"), itep_call("Complete", f"B{n}"))]
    await store_batch(conn, [RawRow.of(e) for e in batch], [x for e in batch for x in normalize(e)])
    rows = await conn.fetch("SELECT status, count(*) FROM exams GROUP BY status")
    assert [(r["status"], r["count"]) for r in rows] == [("completed", 20)]
    assert await conn.fetchval("SELECT count(*) FROM events WHERE applied") == 40


async def test_known_events_are_published_again_only_when_asked(conn: asyncpg.Connection) -> None:
    first = itep_call("Complete", "K1")
    [event] = normalize(first)
    assert [o.id for o in await store_batch(conn, [RawRow.of(first)], [event])] == [event.event.id]
    again = itep_call("Complete", "K1")  # the vendor sent it again: a new webhook, the same event
    [same] = normalize(again)
    assert await store_batch(conn, [RawRow.of(again)], [same]) == []
    republished = await store_batch(conn, [RawRow.of(again)], [same], republish={same.event.id})
    assert [o.id for o in republished] == [event.event.id]
    assert b'"webhook_id":"%s"' % first.id.encode() in republished[0].body  # as first stored
