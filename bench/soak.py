"""Soak run: a fixed number of webhooks at a steady rate to a real ingress and two routers, while a
router is killed (SIGKILL) and restarted and the ingress's broker path is cut for a few seconds.
Then, once nothing is in flight, what was answered is held against what was stored (soak_report).

The ingress reaches RabbitMQ through a TCP proxy of our own (devkit/proxy.py), so the cut touches
nothing but this run. Routers connect directly: the faults they get are the kills.
"""

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg

from bench.net import free_port, wait_ok
from bench.soak_calls import SOURCES_FILE, Mix, build_calls, new_secrets
from bench.soak_load import send_steady
from bench.soak_report import Queued, Verdict, judge, read_stored
from bench.world import AMQP_URL, DATABASE_URL, Process, World, queue_counts, run_to_end, world
from common.settings import RETRY_DELAYS
from devkit.proxy import TcpProxy
from schemas.topology import tiers_ms

POLL = 0.5
QUIET_POLLS = 6  # the store has not changed for this many polls with empty queues: drained


@dataclass(frozen=True)
class SoakConfig:
    webhooks: int = 20_000
    rate: float = 300.0
    cut_seconds: float = 4.0
    routers: int = 2
    timeout: float = 600.0
    mix: Mix = field(default_factory=Mix)


class Routers:
    """The router subprocesses; a killed one is replaced by a fresh one. Logs are kept in `logs`."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: list[Process] = []
        self.started = 0

    async def start(self, count: int) -> None:
        for _ in range(count):
            self.processes.append(await self._new())

    async def _new(self) -> Process:
        self.started += 1
        return await Process.start(f"router-{self.started}", ["workers", "router"], self.env)

    async def kill_and_restart(self, index: int, pause: float) -> str:
        victim = self.processes[index]
        victim.check_alive()
        victim.proc.kill()  # SIGKILL: no drain, unacked messages go back to the queue
        await victim.proc.wait()
        self._keep_log(victim)
        await asyncio.sleep(pause)
        self.processes[index] = await self._new()
        return f"{victim.label} SIGKILLed, {self.processes[index].label} started {pause:g} s later"

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    async def stop(self) -> None:
        for process in self.processes:
            await _stop(process, self.logs)

    def _keep_log(self, process: Process) -> None:
        shutil.copy(process.log, self.logs / f"{process.label}.log")
        process.log.unlink(missing_ok=True)


async def _stop(process: Process, logs: Path) -> None:
    if process.log.exists():
        shutil.copy(process.log, logs / f"{process.label}.log")
    await process.stop()


def _proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc, query="reconnect_interval=0.5").geturl()


async def _faults(routers: Routers, proxy: TcpProxy, duration: float, cut_seconds: float) -> list[str]:
    """A router killed at 25 % of the run, the broker path cut at 50 %, the other router at 75 %."""
    done: list[str] = []
    started = time.monotonic()

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, started + duration * fraction - time.monotonic()))

    await at(0.25)
    done.append(await routers.kill_and_restart(0, 1.0))
    await at(0.5)
    proxy.cut()
    await asyncio.sleep(cut_seconds)
    proxy.restore()
    done.append(f"ingress broker path cut for {cut_seconds:g} s")
    await at(0.75)
    done.append(await routers.kill_and_restart(len(routers.processes) - 1, 1.0))
    return done


async def _queued(w: World) -> Queued:
    tiers = [w.topology.raw.tier(ms) for ms in tiers_ms(RETRY_DELAYS.default)]
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        raw, _ = await queue_counts(channel, w.topology.raw_queue)
        dead, _ = await queue_counts(channel, w.topology.dead_queue)
        retry = sum([(await queue_counts(channel, t))[0] for t in tiers])
    return Queued(raw, retry, dead)


async def _drained(w: World, db: asyncpg.Connection, routers: Routers) -> None:
    """Until the raw queue and retry tiers are empty and the store stopped changing."""
    last, quiet = -1, 0
    while quiet < QUIET_POLLS:
        routers.check_alive()
        queued = await _queued(w)
        stored = int(await db.fetchval("SELECT count(*) FROM raw_webhooks") or 0)
        quiet = quiet + 1 if queued.raw + queued.retry == 0 and stored == last else 0
        last = stored
        await asyncio.sleep(POLL)


async def _published(name: str) -> set[str]:
    """The message ids of everything on the probe queue."""
    ids: set[str] = set()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        count, _ = await queue_counts(channel, name)
        queue = await channel.get_queue(name)
        async with queue.iterator(no_ack=True) as messages:
            seen = 0
            async for message in messages:
                seen += 1
                ids.add(message.message_id or "")
                if seen >= count:
                    break
    return ids


async def _consumers(w: World, count: int) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        while (await queue_counts(channel, w.topology.raw_queue))[1] < count:
            await asyncio.sleep(0.1)


async def run(config: SoakConfig) -> Verdict:
    logs = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    async with asyncio.timeout(config.timeout), world() as w:
        return await _soak(w, config, logs)


async def _soak(w: World, config: SoakConfig, logs: Path) -> Verdict:
    secret_values = new_secrets()
    calls = build_calls(config.webhooks, secret_values, config.mix)
    env = w.env(**secret_values)
    await run_to_end("migrate", ["workers", "migrate"], env)
    target = urlsplit(AMQP_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    port = free_port()
    ingress_env = w.env(
        **secret_values,
        RESULTBUS_AMQP_URL=_proxied(AMQP_URL, await proxy.start()),
        RESULTBUS_SOURCES=SOURCES_FILE,
        RESULTBUS_INGRESS_HOST="127.0.0.1",
        RESULTBUS_INGRESS_PORT=str(port),
    )
    routers = Routers(env, logs)
    probe = await w.results_probe()
    db = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": w.schema})
    ingress = await Process.start("ingress", ["ingress"], ingress_env)
    try:
        await wait_ok(ingress, f"http://127.0.0.1:{port}/readyz")
        await routers.start(config.routers)
        await asyncio.wait_for(_consumers(w, config.routers), 30.0)
        print(
            f"soak: {config.webhooks:,} webhooks at {config.rate:,.0f}/s, {config.routers} routers"
            f" (schema {w.schema}, prefix {w.topology.prefix}, logs {logs})",
            flush=True,
        )
        faults = asyncio.create_task(
            _faults(routers, proxy, config.webhooks / config.rate, config.cut_seconds)
        )
        sent = await send_steady(f"http://127.0.0.1:{port}", calls, config.rate)
        done = await faults
        ingress.check_alive()
        print(f"soak: sent in {sent.seconds:.1f} s; waiting for the routers to drain", flush=True)
        await _drained(w, db, routers)
        await routers.stop()  # SIGTERM: what they still hold goes back to the queue, and is counted
        stored, queued = await read_stored(db), await _queued(w)
        verdict = judge(calls, sent, stored, queued, await _published(probe), done)
        statuses = [a.status for a in sent.answers]
        verdict.check(
            len(done) == 3 and routers.started == config.routers + 2 and 503 in statuses,
            f"faults took effect: {routers.started - config.routers} routers killed and replaced,"
            f" {statuses.count(503):,} answered 503 while the broker path was cut",
        )
        return verdict
    finally:
        await _stop(ingress, logs)
        await routers.stop()
        await proxy.close()
        await db.close()
