"""The documents consumers rely on stay true: the published JSON Schema matches the Structs, and the
example consumer really consumes."""

import asyncio
import json
import os
import sys
from pathlib import Path

import aio_pika

from common.broker import declare_results
from devkit import samples
from schemas.event import encode_event, event_json_schema
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.conftest import scratch_queue_name
from workers.router.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent


def test_published_json_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "event.schema.json").read_text())
    assert published == event_json_schema(), "docs/event.schema.json is stale: run `make schema`"


async def test_example_consumer_receives_an_event(amqp_url: str, topology: Topology) -> None:
    queue = scratch_queue_name(topology, "example-consumer")
    consumer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "docs" / "example_consumer.py"),
        "--url", amqp_url,
        "--exchange", topology.results_exchange,
        "--queue", queue,
        "--bind", "*.completed",
        "--count", "1",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    [item] = normalize(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await declare_results(channel, topology)
        # Publish until the consumer's queue exists and is bound (it declares it at start-up).
        async with asyncio.timeout(20):
            while True:
                try:
                    await channel.declare_queue(queue, passive=True)
                    break
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
                    exchange = await declare_results(channel, topology)
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)  # the bind follows the declare
            await exchange.publish(
                aio_pika.Message(b'{"not": "completed"}'), routing_key="testpress.event.other"
            )
            body = encode_event(item.event)
            await exchange.publish(
                aio_pika.Message(body, message_id=item.event.id), routing_key="testpress.completed"
            )
            out, _ = await consumer.communicate()
    assert consumer.returncode == 0
    assert out.decode().strip() == f"testpress.completed {item.event.id} exam=attempt:4512 status=completed"
