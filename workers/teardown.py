"""`resultbus teardown`: removes what `make run` made, and only that: its database (or, with
RESULTBUS_DATABASE_SCHEMA, that schema alone), and its prefix's queues and exchanges, named as the
processes name them (common/inventory.py). Other prefixes, other databases and any queue a consumer
declared for itself are left alone.

It says what it is about to delete (how many webhooks and events, how many queues and the messages
in them) and deletes only when the operator types the database's name, or with `--yes`. It refuses
while a process still consumes one of the queues (stop `make run` first), and it never drops the
server's own databases (`postgres`, `template0`, `template1`)."""

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Final, TextIO
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import asyncpg

from common import inventory
from common.amqp import connect_robust
from common.settings import WorkerSettings

_SERVER_DATABASES: Final = frozenset({"postgres", "template0", "template1"})


class TeardownRefused(Exception):
    """Nothing was deleted; the message says why and what to do."""


def add_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    summary = "remove what `make run` made: its database (or schema), its prefix's queues and exchanges"
    parser = sub.add_parser("teardown", help=summary, description=summary + ". Asks first.")
    parser.add_argument("--yes", action="store_true", help="delete without asking (scripts, CI)")


def _database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def _maintenance_url(url: str) -> str:
    """The same server and user, connected to `postgres`: a database cannot drop itself."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Plan:
    """What there is to delete, found before anything is."""

    def __init__(self, settings: WorkerSettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.database = _database_name(settings.database_url)
        self.schema = settings.database_schema
        self.queues = inventory.queues_of(settings.topology, env)
        self.exchanges = inventory.exchanges(settings.topology)
        self.depths: list[inventory.QueueDepth] = []
        self.database_exists = False
        self.schema_exists = False
        self.stored: dict[str, int] = {}

    @property
    def target(self) -> str:
        """What the operator types to confirm: the schema's name, or the database's."""
        return self.schema or self.database

    async def find(self, connection: aio_pika.abc.AbstractConnection) -> None:
        if self.schema is None and self.database in _SERVER_DATABASES:
            raise TeardownRefused(
                f"RESULTBUS_DATABASE_URL names the server's own database {self.database!r}: not ours to drop"
            )
        self.depths = await inventory.passive_depths(connection, self.queues)
        busy = [d for d in self.depths if d.consumers]
        if busy:
            held = ", ".join(f"{d.queue.name} ({d.consumers})" for d in busy)
            raise TeardownRefused(f"processes still consume {held}: stop them (make run: Ctrl-C) first")
        server = await asyncpg.connect(_maintenance_url(self.settings.database_url))
        try:
            self.database_exists = bool(
                await server.fetchval("SELECT true FROM pg_database WHERE datname = $1", self.database)
            )
        finally:
            await server.close()
        if not self.database_exists:
            return
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            schema = self.schema or "public"
            self.schema_exists = bool(
                await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema)
            )
            for table in ("raw_webhooks", "events", "subscriptions", "itep_orders"):
                if await conn.fetchval("SELECT to_regclass($1)", f"{_ident(schema)}.{table}") is not None:
                    self.stored[table] = int(
                        await conn.fetchval(f"SELECT count(*) FROM {_ident(schema)}.{table}")
                    )
        finally:
            await conn.close()

    def lines(self) -> list[str]:
        where = urlsplit(self.settings.database_url)
        server = f"{where.hostname or 'localhost'}:{where.port or 5432}"
        stored = ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in self.stored.items() if n)
        if self.schema is not None:
            there = self.schema_exists
            data = f"schema {self.schema} of database {self.database} on {server}"
        else:
            there = self.database_exists
            data = f"database {self.database} on {server}"
        data += f" ({stored or 'nothing stored'})" if there else ": not there, nothing to drop"
        declared = [d for d in self.depths if d.messages is not None]
        messages = sum(d.messages or 0 for d in declared)
        return [
            f"teardown: what `make run` made for prefix {self.settings.topology.prefix!r}:",
            f"  {data}",
            f"  {len(declared)} of the prefix's {len(self.queues)} queues ({messages:,} messages in them)",
            f"  the exchanges {', '.join(self.exchanges)}",
        ]


async def remove(plan: Plan, connection: aio_pika.abc.AbstractConnection) -> list[str]:
    done = []
    channel = await connection.channel()
    removed = 0
    for depth in plan.depths:
        if depth.messages is not None:
            await channel.queue_delete(depth.queue.name)
            removed += 1
    for exchange in plan.exchanges:
        await channel.exchange_delete(exchange)
    await channel.close()
    done.append(f"deleted {removed} queues and the exchanges {', '.join(plan.exchanges)}")
    if plan.schema is not None and plan.schema_exists:
        conn = await asyncpg.connect(plan.settings.database_url)
        try:
            await conn.execute(f"DROP SCHEMA {_ident(plan.schema)} CASCADE")
        finally:
            await conn.close()
        done.append(f"dropped schema {plan.schema} of database {plan.database}")
    elif plan.schema is None and plan.database_exists:
        server = await asyncpg.connect(_maintenance_url(plan.settings.database_url))
        try:
            await server.execute(f"DROP DATABASE {_ident(plan.database)}")
        except asyncpg.ObjectInUseError:
            raise TeardownRefused(
                f"database {plan.database} is in use (a process or a psql session is connected):"
                " close it and run teardown again (the queues are gone already)"
            ) from None
        finally:
            await server.close()
        done.append(f"dropped database {plan.database}")
    return done


async def run(
    settings: WorkerSettings,
    env: Mapping[str, str],
    *,
    yes: bool,
    answer: Callable[[str], str] = input,
    stdin: TextIO = sys.stdin,
) -> int:
    plan = Plan(settings, env)
    connection = await connect_robust(settings.amqp_url)
    async with connection:
        try:
            await plan.find(connection)
        except TeardownRefused as refused:
            print(f"teardown: nothing deleted: {refused}", file=sys.stderr)
            return 1
        for line in plan.lines():
            print(line)
        if not yes:
            if not stdin.isatty():
                print(
                    "teardown: nothing deleted: not asked at a terminal; pass --yes to delete",
                    file=sys.stderr,
                )
                return 2
            typed = answer(f"Type {plan.target!r} to delete all of this (anything else keeps it): ")
            if typed.strip() != plan.target:
                print("teardown: nothing deleted")
                return 1
        try:
            for line in await remove(plan, connection):
                print(line)
        except TeardownRefused as refused:
            print(f"teardown: {refused}", file=sys.stderr)
            return 1
    return 0
