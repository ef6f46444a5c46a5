"""The admin process's HTTP side with its console, on a real listener, over a running router: the
world of the console's handler and browser tests."""

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
from aiohttp.test_utils import TestServer

from admin import console
from admin.app import create_app
from common import inventory
from schemas.topology import Topology
from subscribers.queues import TaskPublisher, declare_attempts_queue
from tests.support.pipeline import RunningRouter, running_router

TOKEN = "console-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class ConsoleWorld:
    base: str  # http://127.0.0.1:<port>
    router: RunningRouter


@contextlib.asynccontextmanager
async def console_world(
    amqp_url: str, database_url: str, topology: Topology, schema: str, *, token: str | None = TOKEN
) -> AsyncIterator[ConsoleWorld]:
    async with running_router(amqp_url, database_url, topology, schema) as router:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await declare_attempts_queue(channel, topology)
            app = create_app(router.pool, TaskPublisher(channel, topology), token=token, allow_private=True)
            console.attach_broker(app, connection, topology, inventory.queues_of(topology, {}))
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            try:
                yield ConsoleWorld(str(server.make_url("")).rstrip("/"), router)
            finally:
                await server.close()
        finally:
            await connection.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found[1]


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str]:
    async with http.get(url, **kwargs) as response:
        return response.status, await response.text()


async def sign_in(world: ConsoleWorld, http: aiohttp.ClientSession) -> str:
    """Signs in with the login form; returns the CSRF token of the new session."""
    status, html = await get(http, world.base + "/console/login")
    assert status == 200
    async with http.post(
        world.base + "/console/login",
        data={"csrf": csrf_of(html), "token": TOKEN, "next": "/console/"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/console/"
    status, html = await get(http, world.base + "/console/")
    assert status == 200
    return csrf_of(html)
