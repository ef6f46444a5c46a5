"""The pipeline end to end: webhooks stored per second while the load generator runs at a fixed
concurrency, from its first request until the last webhook answered 200 is in PostgreSQL.

resultbus: the ingress and one router (every 200 an event stored). The peer, in the same run:
FastAPI + Celery (bench/peer.py), every 200 a row inserted by a Celery task. Rounds alternate
between the two; the median of each is kept.
"""

import asyncio
import statistics
import time
from dataclasses import dataclass

import aio_pika
import asyncpg

from bench import stack
from bench.ingress import load
from bench.net import free_port, wait_ok
from bench.payloads import INSPERA_SECRET, INSPERA_SOURCE
from bench.world import AMQP_URL, DATABASE_URL, BenchError, Process, World, world


@dataclass(frozen=True)
class PipelineResult:
    resultbus: list[float]  # stored per second, each round
    peer: list[float]

    @property
    def resultbus_median(self) -> float:
        return statistics.median(self.resultbus)

    @property
    def peer_median(self) -> float:
        return statistics.median(self.peer)

    @property
    def ratio(self) -> float:
        return self.resultbus_median / self.peer_median


async def _stored_at(db: asyncpg.Connection, query: str, count: int, timeout: float) -> float:
    """Unix time when `query` first counted `count` rows (polled every 20 ms)."""
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            while (seen := await db.fetchval(query)) < count:
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise BenchError(f"{seen} of {count} webhooks stored within {timeout}s") from None
    return time.time()


async def resultbus_round(count: int, concurrency: int, timeout: float) -> float:
    async with world() as w, stack.resultbus(w, ["router"]) as s:
        result = await load(s.url, count, concurrency, 0, timeout)
        s.check_alive()
        db = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": w.schema})
        try:
            done = await _stored_at(db, "SELECT count(*) FROM events", result.ok, timeout)
        finally:
            await db.close()
    return result.ok / (done - result.started_at)


async def peer_round(count: int, concurrency: int, timeout: float) -> float:
    async with world() as w:
        return await _peer(w, count, concurrency, timeout)


async def _peer(w: World, count: int, concurrency: int, timeout: float) -> float:
    from bench.peer import CREATE_TABLE, TABLE

    queue = w.queue("celery")
    db = await asyncpg.connect(DATABASE_URL)
    try:
        await db.execute(f'CREATE SCHEMA "{w.schema}"')
        await db.execute(f'SET search_path TO "{w.schema}"')
        await db.execute(CREATE_TABLE)
        port = free_port()
        env = w.env(
            RESULTBUS_BENCH_PEER_QUEUE=queue,
            RESULTBUS_BENCH_PEER_SCHEMA=w.schema,
            RESULTBUS_BENCH_INSPERA_SECRET=INSPERA_SECRET,
            RESULTBUS_BENCH_AMQP_URL=AMQP_URL,
            RESULTBUS_BENCH_DATABASE_URL=DATABASE_URL,
        )
        # Two worker processes: one per core, Celery's default here.
        celery_args = ["celery", "-A", "bench.peer", "worker", "--concurrency", "2", "-Q", queue]
        celery_args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        web_args = ["uvicorn", "bench.peer:api", "--host", "127.0.0.1", "--port", str(port)]
        web_args += ["--no-access-log", "--log-level", "warning", "--loop", "uvloop"]
        processes = [await Process.start("celery", celery_args, env)]
        try:
            await stack.wait_consumer(w, queue, processes[0], timeout=60.0)
            processes.append(await Process.start("uvicorn", web_args, env))
            await wait_ok(processes[1], f"http://127.0.0.1:{port}/readyz")
            result = await load(
                f"http://127.0.0.1:{port}/hooks/{INSPERA_SOURCE}", count, concurrency, 0, timeout
            )
            for process in processes:
                process.check_alive()
            done = await _stored_at(db, f"SELECT count(*) FROM {TABLE}", result.ok, timeout)
        finally:
            for process in reversed(processes):
                await process.stop()
            await _remove_celery_delay_topology()
    finally:
        await db.close()
    return result.ok / (done - result.started_at)


# Celery's worker declares its native delayed delivery when its queue is a quorum queue: 28 levels
# of a queue and an exchange each, and one exchange in front, under fixed names (no prefix).
_CELERY_DELAY_LEVELS = 28


async def _remove_celery_delay_topology() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for level in range(_CELERY_DELAY_LEVELS):
            await channel.queue_delete(f"celery_delayed_{level}")
            await channel.exchange_delete(f"celery_delayed_{level}")
        await channel.exchange_delete("celery_delayed_delivery")


async def run(count: int, concurrency: int, rounds: int, timeout: float) -> PipelineResult:
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        theirs.append(await peer_round(count, concurrency, timeout))
        ours.append(await resultbus_round(count, concurrency, timeout))
        print(
            f"pipeline: resultbus {ours[-1]:,.0f} stored/s, FastAPI + Celery {theirs[-1]:,.0f} rows/s",
            flush=True,
        )
    return PipelineResult(ours, theirs)
