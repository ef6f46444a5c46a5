"""The admin process's HTTP side with its console, on a real listener, over a running router: the
world of the console's handler and browser tests."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
from aiohttp.test_utils import TestServer

from admin import console
from admin.app import create_app
from common import inventory
from schemas.topology import Topology
from subscribers.queues import TaskPublisher, declare_attempts_queue
from tests.pipeline import RunningRouter, running_router

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
