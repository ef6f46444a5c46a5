"""The operator commands as an operator types them: listings say how many there are and how many
they showed, `--since` takes a date, long replays show progress."""

import argparse
import asyncio
import io
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aio_pika
import pytest

from common import inventory
from common.broker import declare_raw, declare_results, declare_tiers
from common.progress import Reporter
from devkit import samples
from schemas.topology import Topology, tiers_ms
from schemas.vendor import Vendor
from subscribers.queues import declare_attempts, declare_deliveries
from tests.support.paths import RESULTBUS, ROOT
from tests.support.pipeline import running_router
from tests.support.services import DATABASE_URL
from workers.delivery.settings import DeliverySettings
from workers.fulfillment.broker import declare_fulfillment, declare_orders_queue
from workers.operator_cli import parse_since
from workers.router.settings import RouterSettings
from workers.router.store import RawRow, store_batch


def test_since_takes_a_date_or_a_time_and_means_utc_without_a_zone() -> None:
    assert parse_since("2026-11-22") == datetime(2026, 11, 22, tzinfo=UTC)
    assert parse_since("2026-11-22T08:30:00") == datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
    plus_one = timezone(timedelta(hours=1))
    assert parse_since("2026-11-22T08:30:00+01:00") == datetime(2026, 11, 22, 8, 30, tzinfo=plus_one)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a date"):
        parse_since("last tuesday")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_count_every_few_seconds_in_a_log() -> None:
    out, clock = io.StringIO(), Clock()
    report = Reporter("replay dead", 3000, stream=out, every=5.0, clock=clock)
    for done in range(1, 3001):
        clock.now = done * 0.01  # 100 a second: 30 seconds in all
        report(done)
    report.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 and "\r" not in out.getvalue()
    assert lines[0] == "replay dead: 500 of 3000 (100/s)"


def test_progress_is_a_bar_on_a_terminal() -> None:
    out, clock = Terminal(), Clock()
    report = Reporter("replay rejected", 10, stream=out, clock=clock)
    for done in range(1, 11):
        clock.now = done * 1.0
        report(done)
    report.finish()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\r") == 11
    assert text.rstrip("\n").rsplit("\r", 1)[-1] == f"replay rejected [{'#' * 30}] 10/10 (1/s)"


async def resultbus(topology: Topology, schema: str, *args: str, **extra: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
        **extra,
    )
    process = await asyncio.create_subprocess_exec(
        str(RESULTBUS), *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_inspect_rejected_says_how_many_and_how_many_were_shown(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        code, out, _ = await resultbus(topology, db_schema, "inspect", "rejected")
        assert (code, out) == (0, "0 rejected webhooks: nothing to replay\n")

        old = datetime(2026, 11, 20, 12, tzinfo=UTC)
        rows = [
            RawRow.of(
                samples.envelope(Vendor.TESTPRESS, b"{}", received_at=old + timedelta(days=i)),
                reason=f"testpress: broken number {i}",
            )
            for i in range(5)
        ]
        async with router.pool.acquire() as conn:
            await store_batch(conn, rows, [])

        code, out, _ = await resultbus(topology, db_schema, "inspect", "rejected", "--limit", "2")
        lines = out.splitlines()
        assert code == 0 and lines[0] == "5 rejected webhooks" and len(lines) == 4
        assert lines[1].startswith(f"{rows[4].id} 2026-11-24T12:00:00+00:00 ")
        assert lines[-1] == "2 of 5 shown (the newest first; --limit N for more)"

        code, out, _ = await resultbus(topology, db_schema, "inspect", "rejected", "--since", "2026-11-23")
        lines = out.splitlines()
        assert lines[0] == "2 rejected webhooks (since 2026-11-23T00:00:00+00:00)" and len(lines) == 3

        before = await router.pool.fetchval("SELECT max(stored_at) FROM raw_webhooks")
        code, out, _ = await resultbus(topology, db_schema, "replay", "rejected", "--since", "2026-11-23")
        assert (code, out) == (0, "replayed 2 rejected webhooks\n")
        # Both came back through the router (and were stored as rejected again, still broken).
        async with asyncio.timeout(10):
            query = "SELECT count(*) FROM raw_webhooks WHERE stored_at > $1"
            while await router.pool.fetchval(query, before) < 2:
                await asyncio.sleep(0.05)


async def test_inspect_dead_says_how_many_were_shown(topology: Topology, db_schema: str) -> None:
    code, out, _ = await resultbus(topology, db_schema, "inspect", "dead")
    assert (code, out) == (0, f"0 messages in {topology.dead_queue}\n")
    code, out, _ = await resultbus(topology, db_schema, "replay", "dead")
    assert (code, out) == (0, "replayed 0 dead-lettered messages\n")


def test_the_console_script_is_installed() -> None:
    assert RESULTBUS.is_file(), "run `make install`: pyproject.toml's [project.scripts] adds it"


async def test_inspect_rejected_finds_them_by_what_their_bodies_name(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_router(amqp_url, database_url, topology, db_schema) as router:
        forms = [
            samples.itep_urlencoded(samples.itep("Complete", test_id=f"CLI{i}TEST", OID="cand-1"))
            for i in range(3)
        ]
        rows = [
            RawRow.of(samples.envelope(Vendor.ITEP, body, content_type=kind), reason="itep: a rule")
            for body, kind in forms
        ]
        async with router.pool.acquire() as conn:
            await store_batch(conn, rows, [])
        code, out, _ = await resultbus(topology, db_schema, "inspect", "rejected", "--test-id", "CLI1TEST")
        lines = out.splitlines()
        assert code == 0 and lines[0] == "1 rejected webhooks (naming test_id CLI1TEST)", out
        assert lines[1].startswith(rows[1].id)
        code, out, _ = await resultbus(topology, db_schema, "inspect", "rejected", "--external-id", "cand-1")
        assert out.splitlines()[0] == "3 rejected webhooks (naming external_id cand-1)"
        code, out, _ = await resultbus(topology, db_schema, "replay", "rejected", "--exam-key", "CLI2TEST")
        assert (code, out) == (0, "replayed 1 rejected webhooks\n")


def _declare_everything(channel: aio_pika.abc.AbstractChannel, topology: Topology) -> Any:
    async def declare() -> aio_pika.abc.AbstractExchange:
        raw, _ = await declare_raw(channel, topology)
        await declare_tiers(channel, topology.raw, tiers_ms(RouterSettings().retry_delays))
        results = await declare_results(channel, topology)
        await declare_deliveries(channel, topology, results)
        await declare_attempts(channel, topology, DeliverySettings().schedule)
        await declare_orders_queue(channel, topology)
        await declare_fulfillment(channel, topology, results, inventory.DEFAULT_ITEP_RETRY_DELAYS)
        return raw

    return declare()


async def _hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """Keeps what it gets unacked."""


async def test_inspect_queues_shows_every_queue_of_the_prefix_with_ready_messages_and_consumers(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    code, out, _ = await resultbus(topology, db_schema, "inspect", "queues")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 28 and "not declared" in lines[1]
    assert lines[-1].startswith(f"0 of 26 queues of prefix {topology.prefix!r} declared")

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        raw = await _declare_everything(channel, topology)
        for n in range(2):
            await raw.publish(aio_pika.Message(f"waiting {n}".encode()), routing_key="itep.itep-main")
        consuming = await connection.channel()
        attempts = await consuming.declare_queue(topology.delivery_attempts_queue, passive=True)
        await attempts.consume(_hold)
        code, out, _ = await resultbus(topology, db_schema, "inspect", "queues")
        await consuming.close()
    rows = {
        line.split()[-4 if "not declared" not in line else -5]: line.split()
        for line in out.splitlines()[1:-1]
    }
    assert code == 0 and set(rows) == {q.name for q in inventory.queues_of(topology, {})}
    assert rows[topology.raw_queue][-3:] == ["2", "—", "0"]  # ready, unacked (not known), consumers
    assert rows[topology.delivery_attempts_queue][-3:] == ["0", "—", "1"]
    assert out.splitlines()[-1].startswith(
        f"26 of 26 queues of prefix {topology.prefix!r} declared, 2 messages ready;"
    )
    assert "set RESULTBUS_RABBITMQ_API" in out.splitlines()[-1]
    # A management API named but not answering: said, and the rest is shown all the same.
    code, out, _ = await resultbus(
        topology, db_schema, "inspect", "queues", RESULTBUS_RABBITMQ_API="http://guest:guest@127.0.0.1:9/"
    )
    assert code == 0 and "the management API at http://127.0.0.1:9/ did not answer" in out
    assert "guest:guest" not in out


def test_unacked_counts_are_read_from_the_management_apis_answer() -> None:
    answer = b'[{"name": "p.raw", "messages_unacknowledged": 3}, {"name": "p.dead"}]'
    assert inventory.unacked_of(answer) == {"p.raw": 3, "p.dead": 0}
