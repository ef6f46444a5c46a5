"""The operator commands as an operator types them: listings say how many there are and how many
they showed, `--since` takes a date, long replays show progress."""

import argparse
import asyncio
import io
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.progress import Reporter
from devkit import samples
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.conftest import DATABASE_URL
from tests.pipeline import running_router
from workers.operator_cli import parse_since
from workers.router.store import RawRow, store_batch

ROOT = Path(__file__).resolve().parent.parent
RESULTBUS = Path(sys.executable).parent / "resultbus"


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


async def resultbus(topology: Topology, schema: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
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
