"""An isolated world per measurement (a unique broker prefix and PostgreSQL schema, removed
afterwards) and the subprocesses that run in it."""

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel

from common import inventory
from common.broker import declare_results
from schemas.topology import Topology

AMQP_URL = os.environ.get("RESULTBUS_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("RESULTBUS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """The bench itself broke (a timeout, a process that died): not a slow result."""


@dataclass
class World:
    topology: Topology
    schema: str
    extra_queues: list[str] = field(default_factory=list)

    def queue(self, label: str) -> str:
        """A scratch queue name under the prefix, deleted with the world."""
        name = f"{self.topology.prefix}.bench.{label}"
        self.extra_queues.append(name)
        return name

    async def results_probe(self) -> str:
        """A scratch queue bound to every routing key of the results exchange: what was published."""
        name = self.queue("results")
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            results = await declare_results(channel, self.topology)
            queue = await channel.declare_queue(name, durable=False)
            await queue.bind(results, routing_key="#")
        return name

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "RESULTBUS_AMQP_URL": AMQP_URL,
            "RESULTBUS_AMQP_PREFIX": self.topology.prefix,
            "RESULTBUS_DATABASE_URL": DATABASE_URL,
            "RESULTBUS_DATABASE_SCHEMA": self.schema,
            # The level users run (the default): every process writes its line per request,
            # webhook or attempt, and that is part of what is measured.
            "RESULTBUS_LOG_LEVEL": "INFO",
            # One ingress process, as every figure was measured before several could share the port
            # (bench/ingress.py measures several on their own rows).
            "RESULTBUS_INGRESS_PROCESSES": "1",
            **more,
        }


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[World]:
    token = uuid.uuid4().hex[:12]
    w = World(Topology(prefix=f"rbbench-{token}"), f"b_{token}")
    try:
        yield w
    finally:
        await _remove(w)


def _topology_names(topology: Topology) -> set[str]:
    """Every queue and exchange of the deployment with default settings (common/inventory.py).
    Deleting a queue or exchange that does not exist is fine."""
    return {q.name for q in inventory.queues_of(topology, {})} | set(inventory.exchanges(topology))


async def _remove(w: World) -> None:
    names = _topology_names(w.topology) | set(w.extra_queues)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # Queues first: deleting an exchange leaves its queues behind. A name may be either.
        for name in sorted(names):
            await channel.queue_delete(name)
        for name in sorted(names):
            await channel.exchange_delete(name)
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{w.schema}" CASCADE')
    finally:
        await conn.close()


async def queue_counts(channel: AbstractChannel, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, without touching it."""
    ok = await (await channel.get_underlay_channel()).queue_declare(name, passive=True)
    return ok.message_count or 0, ok.consumer_count or 0


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot, all cores together (Linux /proc)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Process:
    """A `python -m ...` child; its stderr goes to a file shown when it fails."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, label: str) -> None:
        self.proc, self.log, self.label = proc, log, label

    @classmethod
    async def start(cls, label: str, args: list[str], env: Mapping[str, str]) -> "Process":
        fd, log = tempfile.mkstemp(prefix=f"bench-{label}-", suffix=".log")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", *args, cwd=ROOT, env=dict(env), stdout=fd, stderr=fd
            )
        finally:
            os.close(fd)
        return cls(proc, Path(log), label)

    def check_alive(self) -> None:
        if self.proc.returncode is not None:
            raise BenchError(f"{self.label} exited with {self.proc.returncode}: {self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    async def wait(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise BenchError(f"{self.label} did not finish within {timeout}s: {self.tail()}") from None

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.log.unlink(missing_ok=True)


async def run_to_end(label: str, args: list[str], env: Mapping[str, str], timeout: float = 60.0) -> None:
    process = await Process.start(label, args, env)
    code = await process.wait(timeout)
    if code != 0:
        raise BenchError(f"{label} exited with {code}: {process.tail()}")
    process.log.unlink(missing_ok=True)
