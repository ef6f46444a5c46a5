"""Delivery to subscribers: deliveries per second from `python -m workers delivery` to 10 local
subscribers (all live, or one of them dead: hanging, or refusing connections), against a bare aiohttp
client loop posting the same signed bodies to the same live subscribers in the same run
(bench/delivery_baseline.py); and the latency from an event published on the results exchange to
its arrival at a subscriber (stamped by the subscriber, matched by `webhook-id`).

Subscribers, worker and baseline are separate processes on loopback; on 2 cores they share the CPU
with the broker and PostgreSQL, so the ratio is what to read.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import aiohttp
import asyncpg
import msgspec

from admin import store as admin_store
from admin import wire
from bench.delivery_baseline import Job, Posted, Target
from bench.net import free_port, wait_ok
from bench.world import (
    AMQP_URL,
    DATABASE_URL,
    ROOT,
    BenchError,
    Process,
    World,
    queue_counts,
    run_to_end,
    world,
)
from common.broker import declare_results
from schemas.event import ExamRef, ResultEvent, Status, encode_event
from schemas.topology import result_routing_key
from schemas.vendor import Vendor
from subscribers.endpoint import normalize_endpoint
from subscribers.queues import delivery_queue_names
from subscribers.signing import generate_secret
from vendors.base import Normalized
from workers.delivery.settings import DeliverySettings
from workers.router.store import RawRow, store_batch

Event = tuple[str, bytes]  # (event id, body)

# Deliveries per second to 10 live subscribers (issue 20): one worker, and two together.
FLOORS_PER_S = {1: 1200.0, 2: 2000.0}


def floor(workers: int) -> float:
    return FLOORS_PER_S.get(workers, FLOORS_PER_S[2])


@dataclass(frozen=True)
class DeliveryConfig:
    events: int = 2_000
    subscribers: int = 10
    dead: str = "none"  # or "hanging", "refused": one of the subscribers
    workers: int = 1  # `workers delivery` processes
    latency_rate: float = 10.0  # events per second in the latency phase: well under capacity
    latency_events: int = 200
    timeout: float = 300.0


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class DeliveryResult:
    config: DeliveryConfig
    baseline: Posted
    worker_seconds: float
    burst: Latency
    steady: Latency

    @property
    def live(self) -> int:
        return self.config.subscribers - (self.config.dead != "none")

    @property
    def baseline_rate(self) -> float:
        return self.baseline.ok / self.baseline.seconds

    @property
    def worker_rate(self) -> float:
        return self.config.events * self.live / self.worker_seconds

    @property
    def ratio(self) -> float:
        return self.worker_rate / self.baseline_rate


def _events(count: int) -> list[ResultEvent]:
    now = datetime.now(UTC)
    return [
        ResultEvent(
            id=str(uuid.uuid4()),
            type=Status.COMPLETED.value,
            vendor=Vendor.ITEP,
            source="itep-bench",
            webhook_id=str(uuid.uuid4()),
            vendor_event="Complete",
            received_at=now,
            status=Status.COMPLETED,
            exam=ExamRef(key=f"BENCH{uuid.uuid4().hex[:12]}"),
        )
        for _ in range(count)
    ]


async def _stored(w: World, events: list[ResultEvent]) -> list[Event]:
    """The events stored as a router stores them (the delivery workers read the body from there), and
    the bodies it would publish."""
    db = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": w.schema})
    out: list[Event] = []
    try:
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            raws = [
                RawRow(
                    id=e.webhook_id,
                    source=e.source,
                    vendor=e.vendor.value,
                    received_at=e.received_at,
                    content_type="application/json",
                    body=b"{}",
                )
                for e in chunk
            ]
            stored = await store_batch(db, raws, [Normalized(e.id, e) for e in chunk])
            out.extend((o.id, o.body) for o in stored)
    finally:
        await db.close()
    return out


class Subscribers:
    """The subscriber process and its ports: `live` answer, `dead` (if any) hangs or refuses."""

    def __init__(self, process: Process, control: int, live: list[int], dead: int | None) -> None:
        self.process, self.control, self.live, self.dead = process, control, live, dead

    @classmethod
    async def start(cls, count: int, dead: str) -> "Subscribers":
        control = free_port()
        dead_port = None if dead == "none" else free_port()
        live = [free_port() for _ in range(count - (dead_port is not None))]
        args = ["bench.subscribers", str(control), *map(str, live)]
        if dead == "hanging":
            args += ["--hang", str(dead_port)]
        process = await Process.start("subscribers", args, {})
        await wait_ok(process, f"http://127.0.0.1:{control}/count")
        return cls(process, control, live, dead_port)

    def urls(self) -> list[str]:
        ports = self.live if self.dead is None else [*self.live, self.dead]
        return [f"http://127.0.0.1:{p}/hook" for p in ports]

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"http://127.0.0.1:{self.control}/reset") as response:
            response.raise_for_status()

    async def wait_for(self, session: aiohttp.ClientSession, count: int, timeout: float) -> dict[str, float]:
        """Until `count` distinct (webhook-id, live port) arrivals; then the last arrival per id."""
        url = f"http://127.0.0.1:{self.control}/count"
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while seen < count:
                    self.process.check_alive()
                    await asyncio.sleep(0.1)
                    async with session.get(url) as response:
                        seen = int((await response.json())["count"])
        except TimeoutError:
            raise BenchError(f"subscribers received {seen} of {count} deliveries in {timeout}s") from None
        async with session.get(f"http://127.0.0.1:{self.control}/arrivals") as response:
            rows = msgspec.json.decode(await response.read(), type=list[tuple[str, int, float]])
        last: dict[str, float] = {}
        for event_id, _, stamp in rows:
            last[event_id] = max(stamp, last.get(event_id, 0.0))
        return last


async def _subscribe(w: World, urls: list[str]) -> list[Target]:
    db = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": w.schema})
    targets = []
    try:
        for url in urls:
            secret = generate_secret()
            body = wire.SubscriptionCreate(url=url, description="bench", secret=secret)
            await admin_store.create_subscription(db, body, normalize_endpoint(url), secret)
            targets.append(Target(url, secret))
    finally:
        await db.close()
    return targets


async def _baseline(targets: list[Target], events: list[Event], per_endpoint: int, timeout: float) -> Posted:
    with tempfile.NamedTemporaryFile("wb", prefix="bench-delivery-", suffix=".json", delete=False) as file:
        file.write(msgspec.json.encode(Job(targets, events, per_endpoint)))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.delivery_baseline",
            file.name,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BenchError(f"delivery baseline did not finish within {timeout}s") from None
    finally:
        os.remove(file.name)
    if proc.returncode != 0:
        raise BenchError(f"delivery baseline exited with {proc.returncode}")
    return msgspec.json.decode(out, type=Posted)


async def _publish(w: World, events: list[Event], rate: float | None) -> dict[str, float]:
    """Publishes each event (persistent, confirmed) as a router would; returns when each was sent.
    `rate` None: as fast as confirms allow, 200 in flight."""
    sent: dict[str, float] = {}
    key = result_routing_key(Vendor.ITEP, Status.COMPLETED.value)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_results(channel, w.topology)

        async def one(event_id: str, body: bytes) -> None:
            message = aio_pika.Message(
                body,
                message_id=event_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            sent[event_id] = time.time()
            await exchange.publish(message, key)

        if rate is None:
            for start in range(0, len(events), 200):
                await asyncio.gather(*(one(i, b) for i, b in events[start : start + 200]))
        else:
            started, tasks = time.perf_counter(), []
            for n, (event_id, body) in enumerate(events):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one(event_id, body)))
            await asyncio.gather(*tasks)
    return sent


def _latency(sent: dict[str, float], arrived: dict[str, float]) -> Latency:
    """Per event: published -> its last live subscriber received it."""
    ms = [(arrived[i] - t) * 1000 for i, t in sent.items()]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return Latency(cuts[49], cuts[98], max(ms))


async def _worker_ready(w: World, process: Process, consumers: int = 1) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, asyncio.timeout(30.0):
        channel = await connection.channel()
        while True:
            process.check_alive()
            try:
                if (await queue_counts(channel, w.topology.delivery_attempts_queue))[1] >= consumers:
                    return
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()  # not declared yet
            await asyncio.sleep(0.1)


async def run(config: DeliveryConfig) -> DeliveryResult:
    subscribers = await Subscribers.start(config.subscribers, config.dead)
    try:
        async with world() as w, aiohttp.ClientSession() as session:
            return await _measure(w, config, subscribers, session)
    finally:
        await subscribers.process.stop()


async def _measure(
    w: World, config: DeliveryConfig, subscribers: Subscribers, session: aiohttp.ClientSession
) -> DeliveryResult:
    env = w.env(RESULTBUS_ALLOW_PRIVATE_ENDPOINTS="1", RESULTBUS_SHUTDOWN_TIMEOUT="3")
    settings = DeliverySettings.from_env(env)
    w.extra_queues.extend(delivery_queue_names(w.topology, settings.schedule))
    await run_to_end("migrate", ["workers", "migrate"], env)
    targets = await _subscribe(w, subscribers.urls())
    live = len(subscribers.live)

    # As many POSTs in flight per endpoint as the workers together may have.
    per_endpoint = settings.per_endpoint * config.workers
    baseline = await _baseline(
        targets[:live],
        [(e.id, encode_event(e)) for e in _events(config.events)],
        per_endpoint,
        config.timeout,
    )
    print(
        f"delivery baseline: {baseline.ok / baseline.seconds:,.0f} posts/s to {live} subscribers,"
        f" p50 {baseline.p50_ms:.2f} ms, p99 {baseline.p99_ms:.2f} ms, {baseline.failed} failed",
        flush=True,
    )
    await subscribers.reset(session)

    workers = [
        await Process.start(
            f"delivery-{n}", os.environ.get("BENCH_WORKER_ARGS", "workers delivery").split(), env
        )
        for n in range(config.workers)
    ]
    try:
        for worker in workers:
            await _worker_ready(w, worker, consumers=config.workers)
        bodies = await _stored(w, _events(config.events))
        cpu = sum(worker.cpu_seconds() for worker in workers)
        sent = await _publish(w, bodies, None)
        arrived = await subscribers.wait_for(session, config.events * live, config.timeout)
        cpu = sum(worker.cpu_seconds() for worker in workers) - cpu
        seconds = max(arrived.values()) - min(sent.values())
        burst = _latency(sent, arrived)
        print(
            f"delivery worker: {config.events * live / seconds:,.0f} deliveries/s,"
            f" {cpu / (config.events * live) * 1e6:,.0f} us of its CPU per delivery",
            flush=True,
        )
        steady = burst
        if config.latency_events:
            await subscribers.reset(session)
            sent = await _publish(w, await _stored(w, _events(config.latency_events)), config.latency_rate)
            arrived = await subscribers.wait_for(session, config.latency_events * live, config.timeout)
            steady = _latency(sent, arrived)
        for worker in workers:
            worker.check_alive()
    finally:
        for worker in workers:
            await worker.stop()
    return DeliveryResult(config, baseline, seconds, burst, steady)
