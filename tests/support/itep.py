"""The iTEP orders' world: the admin API, a fake iTEP and a fulfillment worker in this process, and a probe on the order changes."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractQueue

from common.broker import declare_results
from common.service import running
from common.settings import ProcessSettings, WorkerSettings
from devkit.fake_itep import FakeItep, serving
from schemas.event import ResultEvent, decode_event
from schemas.itep_order import (
    ORDER_ROUTING_PREFIX,
    OrderChanged,
    decode_order_changed,
)
from schemas.topology import Topology
from tests.support.admin import Admin, admin_api
from tests.support.pipeline import RunningRouter
from tests.support.services import scratch_queue_name
from workers.fulfillment.broker import fulfillment_queue_names
from workers.fulfillment.run import start_fulfillment
from workers.fulfillment.settings import FulfillmentSettings

API_KEY = "fake-itep-api-key-for-tests"


DELAYS = (0.2, 0.4)


@dataclass
class World:
    admin: Admin
    fake: FakeItep
    worker: WorkerSettings
    changes: AbstractQueue  # bound to resultbus.itep.order.#
    channel: aio_pika.abc.AbstractChannel

    async def order(self, order_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                code, body = await self.admin.call("GET", f"/v1/itep/orders/{order_id}")
                assert code == 200, body
                if body["status"] == status:
                    return body
                await asyncio.sleep(0.05)

    async def changed(self, count: int, timeout: float = 10.0) -> list[OrderChanged]:
        out: list[OrderChanged] = []
        async with asyncio.timeout(timeout):
            while len(out) < count:
                message = await self.changes.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                assert message.routing_key is not None
                event = decode_order_changed(message.body)
                assert message.routing_key == ORDER_ROUTING_PREFIX + event.change
                assert message.message_id == event.id
                out.append(event)
        return out


def itep_settings(endpoint: str, **changes: Any) -> FulfillmentSettings:
    fields: dict[str, Any] = {
        "endpoint": endpoint,
        "api_key": API_KEY,
        "track": "RC",
        "gtx_header": "X-Itep-Gtx-Signature",
        "stx_header": "X-Itep-Stx-Signature",
        "timeout": 2.0,
        "connect_timeout": 1.0,
        "retry_delays": DELAYS,
        "relay_interval": 0.05,
    }
    fields.update(changes)
    return FulfillmentSettings(**fields)


@contextlib.asynccontextmanager
async def world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, fake: FakeItep, **changes: Any
) -> AsyncIterator[World]:
    for name in fulfillment_queue_names(topology, DELAYS):
        scratch_queue_name(topology, "", name=name)
    worker = WorkerSettings(
        amqp_url=amqp_url, topology=topology, database_url=database_url, database_schema=db_schema
    )
    async with (
        admin_api(amqp_url, database_url, topology, db_schema) as admin,
        serving(fake) as endpoint,
        running(
            "fulfillment",
            (worker, itep_settings(**{"endpoint": endpoint, **changes})),
            start_fulfillment,
            ProcessSettings(shutdown_timeout=3.0),
        ),
    ):
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            results = await declare_results(channel, topology)
            probe = await channel.declare_queue(scratch_queue_name(topology, "order-changes"), durable=False)
            await probe.bind(results, routing_key=ORDER_ROUTING_PREFIX + "#")
            yield World(admin, fake, worker, probe, channel)


async def result_events(router: RunningRouter, count: int, timeout: float = 10.0) -> list[ResultEvent]:
    """The first `count` result events on the router's probe queue (bound to `#`: order changes
    arrive there too, and are skipped)."""
    out: list[ResultEvent] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            message = await router.results.get(fail=False)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            await message.ack()
            if not (message.routing_key or "").startswith(ORDER_ROUTING_PREFIX):
                out.append(decode_event(message.body))
    return out


def an_order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": f"crm-{uuid.uuid4().hex[:8]}",
        "product_code": "STX-Academic-Plus",
        "email": "mary.example@example.com",
        "bcc": "office@example.com",
        "assigned_to": {"student-name": "Mary Example", "customer-candidate-id": 9810283},
        "registration": {
            "Last_Name": "Example",
            "First_Name": "Mary",
            "Birthday": "7/8/1995",
            "Gender": "Female",
        },
    }
    body.update(changes)
    return body
