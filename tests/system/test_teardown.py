"""`make teardown` / `resultbus teardown` against the real broker and PostgreSQL, in a world of the
test's own (a unique prefix and database): it removes what `make run` made and only that, says what
first, asks (or wants --yes), and refuses while something still consumes."""

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import asyncpg
import pytest

from common import inventory
from common.broker import declare_raw, declare_results, declare_tiers
from common.settings import WorkerSettings
from schemas.topology import Topology, tiers_ms
from subscribers.queues import declare_attempts, declare_deliveries
from tests.support.paths import RESULTBUS, ROOT
from tests.support.services import DATABASE_URL, scratch_queue_name
from workers import teardown
from workers.delivery.settings import DeliverySettings
from workers.fulfillment.broker import declare_fulfillment, declare_orders_queue
from workers.migrate import migrate
from workers.router.settings import RouterSettings

SERVER = DATABASE_URL.rsplit("/", 1)[0]


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"rbteardown_{uuid.uuid4().hex[:12]}"
    yield name
    server = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await server.close()


async def make_run_world(
    amqp_url: str, topology: Topology, database_url: str, schema: str | None = None
) -> None:
    """What `make run` leaves: the migrated database, every queue and exchange of the prefix, a few
    messages waiting."""
    code, _, err = await command(topology, database_url, "migrate", schema=schema)
    assert code == 0, err
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        raw, _ = await declare_raw(channel, topology)
        await declare_tiers(channel, topology.raw, tiers_ms(RouterSettings().retry_delays))
        results = await declare_results(channel, topology)
        await declare_deliveries(channel, topology, results)
        await declare_attempts(channel, topology, DeliverySettings().schedule)
        await declare_orders_queue(channel, topology)
        await declare_fulfillment(channel, topology, results, inventory.DEFAULT_ITEP_RETRY_DELAYS)
        for n in range(3):
            await raw.publish(aio_pika.Message(f"waiting {n}".encode()), routing_key="itep.itep-main")


async def command(
    topology: Topology, database_url: str, *args: str, schema: str | None = None, make: bool = False
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(RESULTBUS_AMQP_PREFIX=topology.prefix, RESULTBUS_DATABASE_URL=database_url)
    if schema is not None:
        env["RESULTBUS_DATABASE_SCHEMA"] = schema
    program = ["make", "--no-print-directory", *args] if make else [str(RESULTBUS), *args]
    process = await asyncio.create_subprocess_exec(
        *program, env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that keeps what it gets unacked (given back when its channel closes)."""


async def queue_exists(connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def exchange_exists(connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_exchange(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def database_exists(name: str) -> bool:
    server = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        return bool(await server.fetchval("SELECT true FROM pg_database WHERE datname = $1", name))
    finally:
        await server.close()


async def test_make_teardown_removes_what_make_run_made_and_only_that(
    amqp_url: str, topology: Topology, database: str
) -> None:
    database_url = f"{SERVER}/{database}"
    await make_run_world(amqp_url, topology, database_url)
    ours = [q.name for q in inventory.queues_of(topology, {})]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        # Beside it: another deployment's queue, and a consumer's own queue on the results exchange.
        neighbour = await channel.declare_queue(
            scratch_queue_name(topology, "", name=f"{topology.prefix}x.raw")
        )
        own = await channel.declare_queue(scratch_queue_name(topology, "consumer"))
        await own.bind(topology.results_exchange, routing_key="#")
        assert all([await queue_exists(connection, q) for q in ours])

        # Not at a terminal and no --yes: says what it would delete, deletes nothing.
        code, out, err = await command(topology, database_url, "teardown")
        assert code == 2 and "pass --yes" in err, (out, err)
        assert f"database {database} on 127.0.0.1:5432 (" in out
        assert "26 of the prefix's 26 queues (3 messages in them)" in out
        assert await database_exists(database) and all([await queue_exists(connection, q) for q in ours])

        # Something still consumes (make run still running): refused, nothing deleted.
        consuming = await connection.channel()
        consumer = await consuming.declare_queue(topology.raw_queue, passive=True)
        await consumer.consume(_hold)
        code, _, err = await command(topology, database_url, "teardown", "--yes")
        assert code == 1 and f"processes still consume {topology.raw_queue} (1)" in err, err
        await consuming.close()
        assert await database_exists(database) and await queue_exists(connection, topology.raw_queue)
        async with asyncio.timeout(10):  # the broker counts the consumer gone a moment later
            while (await inventory.passive_depths(connection, inventory.queues(topology, (), [], [])[:1]))[
                0
            ].consumers:
                await asyncio.sleep(0.05)

        # make teardown YES=1: all of it gone, and nothing else.
        code, out, err = await command(topology, database_url, "teardown", "YES=1", make=True)
        assert code == 0, (out, err)
        assert "deleted 26 queues" in out and f"dropped database {database}" in out
        assert not await database_exists(database)
        assert not any([await queue_exists(connection, q) for q in ours])
        assert not await exchange_exists(connection, topology.raw_exchange)
        assert not await exchange_exists(connection, topology.results_exchange)
        assert await queue_exists(connection, neighbour.name) and await queue_exists(connection, own.name)
        assert await database_exists("test")

        # Run again, nothing is left to remove: said so.
        code, out, _ = await command(topology, database_url, "teardown", "--yes")
        assert code == 0 and "not there, nothing to drop" in out and "0 of the prefix's 26 queues" in out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_with_a_schema_it_drops_that_schema_once_its_name_is_typed(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    await make_run_world(amqp_url, topology, DATABASE_URL, schema=db_schema)
    settings = WorkerSettings(
        amqp_url=amqp_url, topology=topology, database_url=DATABASE_URL, database_schema=db_schema
    )
    conn = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": db_schema})
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO raw_webhooks (id, source, vendor, received_at, content_type, body, outcome)"
            " VALUES ($1, 'itep-main', 'itep', now(), 'application/json', '\\x7b7d', 'accepted')",
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    asked: list[str] = []

    def wrong(prompt: str) -> str:
        asked.append(prompt)
        return "yes"

    assert await teardown.run(settings, {}, yes=False, answer=wrong, stdin=Terminal()) == 1
    assert asked == [f"Type {db_schema!r} to delete all of this (anything else keeps it): "]
    check = await asyncpg.connect(DATABASE_URL)
    try:
        assert await check.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", db_schema) == 1
        assert await teardown.run(settings, {}, yes=False, answer=lambda _: db_schema, stdin=Terminal()) == 0
        assert await check.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", db_schema) == 0
        assert await check.fetchval("SELECT current_database()") == "test"  # the database stays
    finally:
        await check.close()


async def test_it_never_drops_the_servers_own_database(amqp_url: str, topology: Topology) -> None:
    settings = WorkerSettings(amqp_url=amqp_url, topology=topology, database_url=f"{SERVER}/postgres")
    assert await teardown.run(settings, {}, yes=True) == 1
    assert await database_exists("postgres")
