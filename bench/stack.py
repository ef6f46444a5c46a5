"""The resultbus pipeline started for a bench: migrations, the worker roles asked for, and an ingress
with the bench's Inspera source, all in one world; ready when the ingress answers /readyz and each
worker's consumer is on its queue."""

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from bench.net import free_port, wait_ok
from bench.payloads import INSPERA_SECRET, INSPERA_SOURCE
from bench.world import AMQP_URL, Process, World, queue_counts, run_to_end
from subscribers.queues import delivery_queue_names
from workers.delivery.settings import DeliverySettings

SOURCES_TOML = f"""
[[source]]
id = "{INSPERA_SOURCE}"
vendor = "inspera"

[source.auth]
kind = "inspera_signature"
secret_env = ["RESULTBUS_BENCH_INSPERA_SECRET"]
"""


@contextlib.contextmanager
def sources_file() -> Iterator[Path]:
    with tempfile.NamedTemporaryFile("w", prefix="bench-sources-", suffix=".toml", delete=False) as file:
        file.write(SOURCES_TOML)
    path = Path(file.name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@dataclass
class Stack:
    url: str  # the bench source's webhook URL
    env: dict[str, str]
    processes: list[Process]

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()


async def wait_consumer(w: World, queue: str, process: Process, timeout: float = 30.0) -> None:
    """Until someone consumes `queue` (declared by the process itself, so maybe not there yet)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, asyncio.timeout(timeout):
        channel = await connection.channel()
        while True:
            process.check_alive()
            try:
                if (await queue_counts(channel, queue))[1] > 0:
                    return
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def resultbus(w: World, roles: Sequence[str], **more_env: str) -> AsyncIterator[Stack]:
    port = free_port()
    with sources_file() as sources:
        env = w.env(
            RESULTBUS_SOURCES=str(sources),
            RESULTBUS_INGRESS_HOST="127.0.0.1",
            RESULTBUS_INGRESS_PORT=str(port),
            RESULTBUS_BENCH_INSPERA_SECRET=INSPERA_SECRET,
            RESULTBUS_ALLOW_PRIVATE_ENDPOINTS="1",
            RESULTBUS_SHUTDOWN_TIMEOUT="3",
            **more_env,
        )
        await run_to_end("migrate", ["workers", "migrate"], env)
        if "delivery" in roles:  # the delivery worker's queues are not the topology's own names
            w.extra_queues.extend(delivery_queue_names(w.topology, DeliverySettings.from_env(env).schedule))
        processes: list[Process] = []
        try:
            ingress = await Process.start("ingress", ["ingress"], env)
            processes.append(ingress)
            await wait_ok(ingress, f"http://127.0.0.1:{port}/readyz")
            for role in roles:
                process = await Process.start(role, ["workers", role], env)
                processes.append(process)
                queue = w.topology.raw_queue if role == "router" else w.topology.delivery_attempts_queue
                await wait_consumer(w, queue, process)
            yield Stack(f"http://127.0.0.1:{port}/hooks/{INSPERA_SOURCE}", env, processes)
        finally:
            for process in reversed(processes):
                await process.stop()
