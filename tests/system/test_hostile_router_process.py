"""Hostile content through the real router process: one bad body never stops it, and a message that
kills it anyway is set aside without taking the webhooks beside it along.

The property test runs one router process (`python -m workers router`) for all its examples: each
example publishes hostile envelopes interleaved with valid ones and asserts that every one is stored
(accepted or rejected with a reason), every valid one has its event, and the process still runs.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import aio_pika
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.broker import declare_raw
from schemas.envelope import ENVELOPE_CONTENT_TYPE, RawEnvelope, encode_envelope
from schemas.topology import Topology, raw_routing_key
from schemas.vendor import Vendor
from tests.support import hostile
from tests.support.paths import ROOT
from tests.support.router_process import World
from tests.support.services import AMQP_URL, DATABASE_URL, delete_topology
from workers.migrate import migrate


class RouterWorld:
    def __init__(self) -> None:
        self.topology = Topology(prefix=f"rbtest-{uuid.uuid4().hex[:12]}")
        self.schema = f"t_{uuid.uuid4().hex[:16]}"
        self.env = {
            **os.environ,
            "RESULTBUS_AMQP_URL": AMQP_URL,
            "RESULTBUS_AMQP_PREFIX": self.topology.prefix,
            "RESULTBUS_DATABASE_URL": DATABASE_URL,
            "RESULTBUS_DATABASE_SCHEMA": self.schema,
            "RESULTBUS_LOG_LEVEL": "ERROR",
            "RESULTBUS_LOG_JSON": "1",
        }
        self.router: subprocess.Popen[bytes] | None = None

    async def setup(self) -> None:
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.execute(f"CREATE SCHEMA {self.schema}")
            await conn.execute(f"SET search_path = {self.schema}")
            await migrate(conn)
        finally:
            await conn.close()

    async def teardown(self) -> None:
        await delete_topology(self.topology)
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()

    async def publish(self, envelopes: list[RawEnvelope]) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange, _ = await declare_raw(channel, self.topology)
            for envelope in envelopes:
                await exchange.publish(
                    aio_pika.Message(
                        encode_envelope(envelope),
                        message_id=envelope.id,
                        content_type=ENVELOPE_CONTENT_TYPE,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=raw_routing_key(envelope.vendor, envelope.source),
                )

    async def outcomes(self, ids: list[str], timeout: float = 30) -> dict[str, tuple[str, str | None, int]]:
        """id -> (outcome, reason, events) once every id is stored."""
        conn = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": self.schema})
        try:
            async with asyncio.timeout(timeout):
                while True:
                    rows = await conn.fetch(
                        """SELECT r.id::text, r.outcome, r.reason,
                                  (SELECT count(*) FROM events e WHERE e.webhook_id = r.id) AS events
                           FROM raw_webhooks r WHERE r.id = ANY($1::uuid[])""",
                        ids,
                    )
                    if len(rows) == len(ids):
                        return {r["id"]: (r["outcome"], r["reason"], r["events"]) for r in rows}
                    await asyncio.sleep(0.05)
        finally:
            await conn.close()


@pytest.fixture(scope="module")
def router_world() -> Iterator[RouterWorld]:
    world = RouterWorld()
    asyncio.run(world.setup())
    # A file, not a pipe: every rejection is an error line, and a pipe nobody reads fills and blocks
    # the router on its next write.
    with tempfile.TemporaryFile() as log:
        world.router = subprocess.Popen(
            [sys.executable, "-m", "workers", "router"], env=world.env, cwd=ROOT, stderr=log
        )
        try:
            yield world
        finally:
            world.router.send_signal(signal.SIGTERM)
            world.router.wait(timeout=30)
            asyncio.run(world.teardown())
            log.seek(0)
            stderr = log.read()
    assert world.router.returncode == 0, stderr.decode(errors="replace")[-2000:]


@settings(
    max_examples=30,
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    bad=st.lists(hostile.hostile_envelope(), min_size=5, max_size=25),
    good_vendors=st.lists(hostile.vendors, min_size=2, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_hostile_bodies_never_stop_the_router(
    router_world: RouterWorld, bad: list[RawEnvelope], good_vendors: list[Vendor], order: object
) -> None:
    good = [hostile.valid_envelope(vendor) for vendor in good_vendors]
    envelopes = bad + good
    order.shuffle(envelopes)  # type: ignore[attr-defined]
    asyncio.run(router_world.publish(envelopes))
    outcomes = asyncio.run(router_world.outcomes([e.id for e in envelopes]))

    assert router_world.router is not None and router_world.router.poll() is None, "the router exited"
    for envelope in envelopes:
        outcome, reason, _ = outcomes[envelope.id]
        assert outcome in {"accepted", "rejected"}
        if outcome == "rejected":
            assert reason, f"a rejection without a reason: {envelope.body[:200]!r}"
            assert "internal error" not in reason, f"{reason}: {envelope.body[:300]!r}"
    for envelope in good:
        assert outcomes[envelope.id][0] == "accepted", outcomes[envelope.id]
        assert outcomes[envelope.id][2] == 1, f"a valid webhook without its event: {envelope.vendor}"


# --- a message that kills the router --------------------------------------------------------------

POISON = b"KILL-THE-ROUTER"


async def test_a_message_that_kills_the_router_is_set_aside_and_its_neighbours_are_stored(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    from tests.support.router_process import world

    async with world(amqp_url, database_url, topology, db_schema) as w:
        innocents = [hostile.valid_envelope(Vendor.TESTPRESS) for _ in range(10)]
        poison = hostile.to_envelope(Vendor.SYNAP, b'{"poison": "' + POISON + b'"}')
        # One batch of eleven: the poison in the middle, so the first router dies holding them all.
        await w.fill([*innocents[:5], poison, *innocents[5:]])
        deaths, router = await _run_until_stored(w, 11)
        try:
            rows = await w.db.fetch("SELECT id::text, outcome, reason FROM raw_webhooks")
            by_id = {r["id"]: r for r in rows}
            assert all(by_id[e.id]["outcome"] == "accepted" for e in innocents)
            assert by_id[poison.id]["outcome"] == "rejected"
            assert "the router stopped 3 times" in by_id[poison.id]["reason"]
            assert await w.db.fetchval("SELECT count(*) FROM events") == 10
            assert await w.db.fetchval("SELECT count(*) FROM router_suspects") == 0
            dead = await w.channel.declare_queue(topology.dead_queue, passive=True)
            assert dead.declaration_result.message_count == 0, "innocent webhooks were dead-lettered"
            # Died in the batch, then three times alone; not once more after the poison was set aside.
            assert deaths == 4
            assert router.returncode is None
        finally:
            router.send_signal(signal.SIGTERM)
            assert await router.wait() == 0


async def _run_until_stored(w: World, count: int) -> tuple[int, asyncio.subprocess.Process]:
    """Runs the poisoned router like an orchestrator would: restarted whenever it dies."""
    deaths = 0
    async with asyncio.timeout(90):
        while True:
            router = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.poisoned_router",
                env={**w.env, "RESULTBUS_BATCH_SIZE": "50"},
                cwd=ROOT,
            )
            while router.returncode is None and await w.stored() < count:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(router.wait(), 0.1)
            if router.returncode is None:
                return deaths, router
            assert router.returncode == -signal.SIGKILL
            deaths += 1


def test_a_bug_while_normalizing_is_the_messages_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception type, not only the ones the normalizers raise on purpose."""
    from aiormq.abc import DeliveredMessage
    from pamqp import commands, header
    from pamqp.commands import Basic

    from common.consumer import UNEXPECTED_ERRORS
    from workers.router import loop

    def buggy(envelope: RawEnvelope) -> list[object]:
        return {}["no such key"]  # type: ignore[no-any-return]

    monkeypatch.setattr(loop, "normalize", buggy)
    envelope = hostile.valid_envelope(Vendor.TESTPRESS)
    message = DeliveredMessage(
        delivery=commands.Basic.Deliver(routing_key="testpress.x", delivery_tag=1),
        header=header.ContentHeader(properties=Basic.Properties(message_id=envelope.id)),
        body=encode_envelope(envelope),
        channel=None,  # type: ignore[arg-type]
    )
    before = UNEXPECTED_ERRORS.labels("router")._value.get()
    item = loop._decode(message)
    assert item.events == [] and item.raw.id == envelope.id
    assert item.raw.reason == "testpress: internal error: KeyError: 'no such key'"
    assert UNEXPECTED_ERRORS.labels("router")._value.get() == before + 1
