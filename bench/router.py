"""Router throughput: events stored and published per second, draining a pre-filled raw queue.

Baseline: a bare consume-and-ack loop (bench/consumer.py) over the same messages with the same
prefetch. Both run as subprocesses; the clock starts when the broker sees the consumer on the raw
queue and stops when the work is done, polled every POLL seconds (figures are good to about ±POLL).
"""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel

from bench.payloads import raw_envelope, run_token
from bench.world import (
    AMQP_URL,
    DATABASE_URL,
    BenchError,
    Process,
    World,
    machine_busy,
    queue_counts,
    run_to_end,
    world,
)
from common.broker import declare_raw
from schemas.envelope import ENVELOPE_CONTENT_TYPE, encode_envelope
from schemas.topology import raw_routing_key

POLL = 0.025
FLOOR_EVENTS_PER_S = 4000.0
# batch:prefetch[xreplicas]; the first is the router's default, the last two routers scaled out
DEFAULT_CONFIGS = "256:512,64:128,512:1024,256:512x2"


@dataclass(frozen=True)
class Config:
    batch_size: int
    prefetch: int
    replicas: int = 1

    @classmethod
    def parse(cls, text: str) -> "Config":
        batch, _, rest = text.partition(":")
        prefetch, _, replicas = rest.partition("x")
        return cls(int(batch), int(prefetch), int(replicas or 1))

    def __str__(self) -> str:
        return f"{self.batch_size}/{self.prefetch}" + (f" x{self.replicas}" if self.replicas > 1 else "")


@dataclass(frozen=True)
class RouterResult:
    config: Config
    messages: int
    events_per_s: float
    baseline_per_s: float
    router_cpu: float
    machine_cpu: float

    @property
    def ratio(self) -> float:
        return self.events_per_s / self.baseline_per_s

    @property
    def passes(self) -> bool:
        return self.events_per_s >= FLOOR_EVENTS_PER_S


Finished = Callable[[AbstractChannel], Awaitable[bool]]


async def prefill(w: World, count: int) -> None:
    """Publishes `count` distinct raw envelopes, confirmed, to the world's raw queue."""
    token = run_token()
    messages = []
    for i in range(count):
        envelope = raw_envelope(i, token)
        message = aio_pika.Message(
            encode_envelope(envelope),
            message_id=envelope.id,
            content_type=ENVELOPE_CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        messages.append((message, raw_routing_key(envelope.vendor, envelope.source)))
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await declare_raw(channel, w.topology)
        for start in range(0, count, 1000):
            await asyncio.gather(*(exchange.publish(m, key) for m, key in messages[start : start + 1000]))
        ready, _ = await queue_counts(channel, w.topology.raw_queue)
    if ready != count:
        raise BenchError(f"pre-fill: {ready} messages on the raw queue, expected {count}")


@dataclass(frozen=True)
class Drain:
    seconds: float
    process_cpu: float  # CPU seconds of the measured process per wall second (1.0 = one core)
    machine_cpu: float  # busy cores of the whole machine, on average


async def timed_drain(w: World, processes: list[Process], finished: Finished, timeout: float) -> Drain:
    """From the first consumer on the raw queue until `finished` says so; CPU summed over `processes`."""

    def cpu_seconds() -> float:
        return sum(p.cpu_seconds() for p in processes)

    connection = await aio_pika.connect(AMQP_URL)
    async with asyncio.timeout(timeout), connection:
        channel = await connection.channel()
        while (await queue_counts(channel, w.topology.raw_queue))[1] == 0:
            for process in processes:
                process.check_alive()
            await asyncio.sleep(0.005)
        started, cpu, busy = time.perf_counter(), cpu_seconds(), machine_busy()
        while True:
            ended = any(p.proc.returncode is not None for p in processes)
            if not ended:
                cpu_now = cpu_seconds()
            if await finished(channel):
                seconds = time.perf_counter() - started
                return Drain(seconds, (cpu_now - cpu) / seconds, (machine_busy() - busy) / seconds)
            if ended:
                for process in processes:
                    process.check_alive()
                raise BenchError("a process exited before finishing")
            await asyncio.sleep(POLL)
    raise AssertionError("unreachable")


async def baseline(count: int, prefetch: int, timeout: float) -> Drain:
    """Messages per second of a bare consume-and-ack loop."""
    async with world() as w:
        await prefill(w, count)
        args = ["bench.consumer", w.topology.raw_queue, str(count), str(prefetch)]
        process = await Process.start("baseline-consumer", args, w.env())

        async def finished(channel: AbstractChannel) -> bool:
            return await queue_counts(channel, w.topology.raw_queue) == (0, 0)

        try:
            return await timed_drain(w, [process], finished, timeout)
        finally:
            await process.stop()


async def router(count: int, config: Config, timeout: float, profile: str | None = None) -> Drain:
    """Events per second stored and published by `python -m workers router`."""
    async with world() as w:
        env = w.env(RESULTBUS_BATCH_SIZE=str(config.batch_size), RESULTBUS_PREFETCH=str(config.prefetch))
        await run_to_end("migrate", ["workers", "migrate"], env)
        await prefill(w, count)
        probe = await w.results_probe()
        db = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": w.schema})
        try:

            async def finished(channel: AbstractChannel) -> bool:
                published, _ = await queue_counts(channel, probe)
                return published >= count and await db.fetchval("SELECT count(*) FROM raw_webhooks") >= count

            processes = [
                await Process.start(f"router-{n}", ["workers", "router"], env) for n in range(config.replicas)
            ]
            spy = await start_profiler(processes[0], profile) if profile else None
            try:
                drain = await timed_drain(w, processes, finished, timeout)
            finally:
                for process in processes:
                    await process.stop()
                if spy is not None:
                    await spy.wait()
            await _check_stored(db, count)
        finally:
            await db.close()
    return drain


async def _check_stored(db: asyncpg.Connection, count: int) -> None:
    """Every webhook accepted (none rejected), one event stored for each."""
    rejected = await db.fetchval("SELECT count(*) FROM raw_webhooks WHERE outcome <> 'accepted'")
    if rejected:
        reason = await db.fetchval("SELECT reason FROM raw_webhooks WHERE reason IS NOT NULL LIMIT 1")
        raise BenchError(f"router rejected {rejected} of the bench's webhooks, e.g. {reason}")
    events = await db.fetchval("SELECT count(*) FROM events")
    if events != count:
        raise BenchError(f"{events} events stored, expected {count}")


async def start_profiler(process: Process, output: str) -> asyncio.subprocess.Process:
    """py-spy (pip install py-spy) sampling the router until it exits; a flame graph in `output`."""
    spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(process.proc.pid),
        "--output",
        output,
        "--nonblocking",
        *(["--format", "raw"] if output.endswith(".txt") else []),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def run(
    count: int, configs: list[Config], timeout: float, profile: str | None = None
) -> list[RouterResult]:
    """Each config against a baseline with the same prefetch, measured just before it."""
    results = []
    for config in configs:
        base = await baseline(count, config.prefetch, timeout)
        drain = await router(count, config, timeout, profile if config == configs[0] else None)
        result = RouterResult(
            config, count, count / drain.seconds, count / base.seconds, drain.process_cpu, drain.machine_cpu
        )
        print(
            f"router {config}: {result.events_per_s:,.0f} events/s (router {drain.process_cpu:.0%} of a core,"
            f" machine {drain.machine_cpu:.2f} cores busy); baseline {result.baseline_per_s:,.0f} msgs/s"
            f" (consumer {base.process_cpu:.0%}, machine {base.machine_cpu:.2f}); ratio {result.ratio:.2f}",
            flush=True,
        )
        results.append(result)
    return results
