"""The documents consumers rely on stay true: the published JSON Schema matches the Structs, and the
example consumer really consumes."""

import asyncio
import json
import os
import sys

import aio_pika

from common.broker import declare_results
from devkit import samples
from schemas.event import encode_event, event_json_schema
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.paths import ROOT
from tests.support.services import scratch_queue_name
from workers.router.normalize import normalize


def test_published_json_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "event.schema.json").read_text())
    assert published == event_json_schema(), "docs/event.schema.json is stale: run `make schema`"


async def run_example_consumer(amqp_url: str, topology: Topology, *options: str) -> tuple[str, str]:
    """Runs docs/example_consumer.py bound to `*.completed` until it handled one event; returns the
    queue it consumed from and what it printed."""
    consumer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "docs" / "example_consumer.py"),
        "--url", amqp_url,
        "--exchange", topology.results_exchange,
        "--bind", "*.completed",
        "--count", "1",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )  # fmt: skip
    assert consumer.stderr is not None
    [item] = normalize(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())))
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection, asyncio.timeout(20):
            # It says which queue once the queue is declared and bound (after a word on the
            # exchange, which nothing has published to yet).
            line = (await consumer.stderr.readline()).decode()
            while not line.startswith("consuming from "):
                assert line, "the consumer stopped"
                line = (await consumer.stderr.readline()).decode()
            queue = line.removeprefix("consuming from ").split(",")[0]
            channel = await connection.channel()
            exchange = await declare_results(channel, topology)
            await exchange.publish(
                aio_pika.Message(b'{"not": "completed"}'), routing_key="testpress.event.other"
            )
            body = encode_event(item.event)
            await exchange.publish(
                aio_pika.Message(body, message_id=item.event.id), routing_key="testpress.completed"
            )
            out, _ = await consumer.communicate()
    finally:
        if consumer.returncode is None:  # a failed check must not leave the consumer running
            consumer.kill()
            await consumer.wait()
    assert consumer.returncode == 0
    assert out.decode().strip() == f"testpress.completed {item.event.id} exam=attempt:4512 status=completed"
    return queue, out.decode()


async def queue_exists(amqp_url: str, name: str) -> bool:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        try:
            await (await connection.channel()).declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


async def test_example_consumer_by_default_leaves_no_queue_behind(amqp_url: str, topology: Topology) -> None:
    queue, _ = await run_example_consumer(amqp_url, topology)
    assert queue.startswith("amq")  # named for it (by the broker, or by aio-pika's robust connection)
    assert not await queue_exists(amqp_url, queue)


async def test_example_consumers_named_queue_expires_once_unused(amqp_url: str, topology: Topology) -> None:
    name = scratch_queue_name(topology, "example-consumer")
    queue, _ = await run_example_consumer(amqp_url, topology, "--queue", name, "--expires", "1")
    assert queue == name
    async with asyncio.timeout(15):
        while await queue_exists(amqp_url, name):
            await asyncio.sleep(0.5)


async def test_example_consumers_durable_queue_stays(amqp_url: str, topology: Topology) -> None:
    name = scratch_queue_name(topology, "example-consumer-durable")
    await run_example_consumer(amqp_url, topology, "--queue", name, "--durable")
    await asyncio.sleep(1.5)
    assert await queue_exists(amqp_url, name)
