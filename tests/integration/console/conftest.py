"""The console tests' fixtures: the console over a running router, the real broker and database, and
an HTTP client that keeps the session cookie."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from schemas.topology import Topology
from tests.support.console_world import ConsoleWorld, console_world


@pytest.fixture
async def world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[ConsoleWorld]:
    async with console_world(amqp_url, database_url, topology, db_schema) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session
