"""The admin API on a real listener over the real database and broker, and its bearer token."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from admin.app import create_app
from common.db import create_pool
from common.settings import WorkerSettings
from schemas.topology import Topology
from subscribers.queues import TaskPublisher, declare_attempts_queue
from workers.migrate import migrate

TOKEN = "test-admin-token-0123456789"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Admin:
    base: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool

    async def call(self, method: str, path: str, json: Any = None, **params: str) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, json=json, params=params, headers=AUTH
        ) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body


@contextlib.asynccontextmanager
async def admin_api(
    amqp_url: str, database_url: str, topology: Topology, schema: str, *, allow_private: bool = True
) -> AsyncIterator[Admin]:
    settings = WorkerSettings(
        amqp_url=amqp_url, topology=topology, database_url=database_url, database_schema=schema
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_attempts_queue(channel, topology)
        app = create_app(pool, TaskPublisher(channel, topology), token=TOKEN, allow_private=allow_private)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                yield Admin(str(server.make_url("")), http, pool)
        finally:
            await server.close()
            with contextlib.suppress(Exception):
                await (await connection.channel()).queue_delete(topology.delivery_attempts_queue)
    finally:
        await connection.close()
        await pool.close()


@pytest.fixture
async def admin(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[Admin]:
    async with admin_api(amqp_url, database_url, topology, db_schema) as running:
        yield running
