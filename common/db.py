"""PostgreSQL connections for the workers and the admin API."""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from common.settings import WorkerSettings

if TYPE_CHECKING:
    from common.service import Service

log = structlog.get_logger()

# What the store functions take: a plain connection or one borrowed from a pool.
DbConn = asyncpg.Connection | PoolConnectionProxy
# Readies a new connection of a pool before its first use (`create_pool`).
Warm = Callable[[asyncpg.Connection], Coroutine[Any, Any, None]]


def _server_settings(settings: WorkerSettings, *, custom_plans: bool = False) -> dict[str, str]:
    server = {"search_path": settings.database_schema} if settings.database_schema else {}
    if custom_plans:
        server["plan_cache_mode"] = "force_custom_plan"
        # What these sessions read is in memory (or on SSD): at the default 4.0 a claim of 80 deliveries
        # by their keys looked dearer than a scan of a young `deliveries` of 10,000 rows.
        server["random_page_cost"] = "1.1"
    return server


async def connect(settings: WorkerSettings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url, server_settings=_server_settings(settings))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A release without asyncpg's session reset (an open transaction is still rolled back)."""


async def create_pool(
    settings: WorkerSettings,
    *,
    size: int = 4,
    reset_sessions: bool = True,
    custom_plans: bool = False,
    warm: Warm | None = None,
) -> asyncpg.Pool:
    """`reset_sessions=False` for pools whose users never LISTEN, SET, open cursors or take session
    advisory locks: asyncpg's reset query on every release is then a round trip that resets nothing
    (the delivery worker acquires twice per attempt; profiled at 11% of its time).

    `custom_plans=True` for pools whose prepared statements find rows by arrays of keys in tables
    that grow fast (the delivery worker's): PostgreSQL otherwise settles, after five executions, on
    one plan for the session, made from the table as it was then, and a worker that started on a
    young table kept scanning all of `deliveries` for every claim until the next ANALYZE (measured:
    PostgreSQL's CPU for 20,000 deliveries 27.8 -> 21.4 s, the deliveries per second 540 -> 584).

    `warm`: every connection is opened at once, and readied by it before first use (the first
    messages after a start otherwise wait for connections to open and functions to compile: 35-45 ms
    for the delivery worker's first claims)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=size if warm is not None else 1,
        max_size=size,
        server_settings=_server_settings(settings, custom_plans=custom_plans),
        reset=None if reset_sessions else _keep_session,
        init=warm,
    )
    assert pool is not None
    return pool


async def open_pool(
    service: "Service",
    settings: WorkerSettings,
    *,
    size: int = 4,
    reset_sessions: bool = True,
    custom_plans: bool = False,
    warm: Warm | None = None,
) -> asyncpg.Pool:
    """A pool for the life of `service`, closed at shutdown; the process is unready while the database
    does not answer (a ping every few seconds, so that /readyz costs no query)."""
    pool = await create_pool(
        settings, size=size, reset_sessions=reset_sessions, custom_plans=custom_plans, warm=warm
    )
    service.on_close(pool.close)
    reachable = asyncio.Event()
    reachable.set()

    async def ping(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                async with asyncio.timeout(_PING_TIMEOUT):
                    await pool.fetchval("SELECT 1")
                reachable.set()
            except Exception as error:  # any failure to answer means: not ready
                if reachable.is_set():
                    log.warning("database not answering", error=repr(error))
                reachable.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_PING_EVERY):
                    await stopping.wait()

    service.run("database ping", ping)
    service.ready_when(reachable.is_set)
    return pool


_PING_EVERY = 5.0
_PING_TIMEOUT = 2.0


async def ensure_database(settings: WorkerSettings) -> None:
    """Creates the database (and schema) when missing, so a fresh machine needs no manual step."""
    try:
        conn = await asyncpg.connect(settings.database_url)
    except asyncpg.InvalidCatalogNameError:
        url = urlsplit(settings.database_url)
        name = url.path.lstrip("/")
        admin = await asyncpg.connect(urlunsplit(url._replace(path="/postgres")))
        try:
            await admin.execute(f"CREATE DATABASE {_identifier(name)}")
            log.info("database created", database=name)
        except asyncpg.DuplicateDatabaseError:
            pass  # another container created it first
        finally:
            await admin.close()
        conn = await asyncpg.connect(settings.database_url)
    try:
        if settings.database_schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_identifier(settings.database_schema)}")
    finally:
        await conn.close()


def _identifier(name: str) -> str:
    """A name quoted as a PostgreSQL identifier (DDL takes no parameters)."""
    return '"' + name.replace('"', '""') + '"'
