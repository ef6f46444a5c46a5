"""Ingress throughput and latency: signed Inspera webhooks at a fixed concurrency, against a bare
aiohttp handler that only publishes with a confirm (bench/baseline_ingress.py).

Both servers and the load generator are separate processes on loopback. On 2 cores the load
generator competes with the server (and the broker) for CPU: the absolute figures are pessimistic,
the ratio is what to read.

With `processes` (issue 23's fallback: one process cannot reach the floor on this machine), the
ingress also runs with that many processes sharing its port (RESULTBUS_INGRESS_PROCESSES), measured
against the same one-process baseline (the issue's comparison) and against the baseline with as many
processes (like for like). Every other round runs one process of each, as before.
"""

import asyncio
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import msgspec

from bench import otlp
from bench.loadgen import Load
from bench.net import free_port, wait_ok
from bench.payloads import INSPERA_SECRET, INSPERA_SOURCE
from bench.stack import sources_file
from bench.world import AMQP_URL, ROOT, BenchError, Process, World, queue_counts, world

RATE_FLOOR = 0.95  # of the baseline's rate
P99_CEILING = 1.2  # times the baseline's p99
TRACED_FLOOR = 0.75  # our own budget: tracing every call costs at most a quarter of the rate
SAMPLED_FLOOR = 0.90  # and one call in ten (OTEL_TRACES_SAMPLER=traceidratio) at most a tenth


@dataclass(frozen=True)
class IngressResult:
    """Every round of each; the figures are their medians (rate, p99 and CPU each on its own).

    `*_cpu_us`: the server's own CPU (user + system, /proc) per answered request in each round,
    warm-up included: what the rate ratio cannot show on a machine whose cores are shared.
    """

    ingress_rounds: list[Load]
    baseline_rounds: list[Load]
    ingress_cpu_us: list[float] = field(default_factory=list)
    baseline_cpu_us: list[float] = field(default_factory=list)
    # With tracing on (every call sampled, exported to a loopback collector), when measured.
    traced_rounds: list[Load] = field(default_factory=list)
    traced_cpu_us: list[float] = field(default_factory=list)
    traced_exports: int = 0
    sampled_rounds: list[Load] = field(default_factory=list)  # one call in ten traced
    sampled_cpu_us: list[float] = field(default_factory=list)
    # Several processes sharing the port, when measured: the ingress, then the baseline likewise.
    processes: int = 1
    multi_rounds: list[Load] = field(default_factory=list)
    multi_cpu_us: list[float] = field(default_factory=list)
    multi_baseline_rounds: list[Load] = field(default_factory=list)
    multi_baseline_cpu_us: list[float] = field(default_factory=list)

    @property
    def multi(self) -> Load:
        return _median_rate(self.multi_rounds)

    @property
    def multi_baseline(self) -> Load:
        return _median_rate(self.multi_baseline_rounds)

    @property
    def multi_p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.multi_rounds)

    @property
    def multi_rate_ratio(self) -> float:
        """The ingress with `processes` processes against the one-process baseline."""
        return self.multi.rate / self.baseline.rate

    @property
    def multi_p99_ratio(self) -> float:
        return self.multi_p99_ms / self.baseline_p99_ms

    @property
    def multi_like_ratio(self) -> float:
        """Against the baseline with as many processes."""
        return self.multi.rate / self.multi_baseline.rate

    @property
    def sampled_ratio(self) -> float:
        return _median_rate(self.sampled_rounds).rate / self.ingress.rate

    @property
    def traced(self) -> Load:
        return _median_rate(self.traced_rounds)

    @property
    def traced_ratio(self) -> float:
        """Tracing on against off, same run."""
        return self.traced.rate / self.ingress.rate

    @property
    def ingress(self) -> Load:
        return _median_rate(self.ingress_rounds)

    @property
    def baseline(self) -> Load:
        return _median_rate(self.baseline_rounds)

    @property
    def ingress_p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.ingress_rounds)

    @property
    def baseline_p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.baseline_rounds)

    @property
    def ingress_cpu_median_us(self) -> float:
        return statistics.median(self.ingress_cpu_us)

    @property
    def baseline_cpu_median_us(self) -> float:
        return statistics.median(self.baseline_cpu_us)

    @property
    def cpu_ratio(self) -> float:
        return self.ingress_cpu_median_us / self.baseline_cpu_median_us

    @property
    def rate_ratio(self) -> float:
        return self.ingress.rate / self.baseline.rate

    @property
    def p99_ratio(self) -> float:
        return self.ingress_p99_ms / self.baseline_p99_ms

    @property
    def passes_rate(self) -> bool:
        return self.rate_ratio >= RATE_FLOOR

    @property
    def passes_p99(self) -> bool:
        return self.p99_ratio <= P99_CEILING


def ingress_available() -> bool:
    return (ROOT / "ingress" / "__main__.py").exists()


def _median_rate(rounds: list[Load]) -> Load:
    return sorted(rounds, key=lambda r: r.rate)[(len(rounds) - 1) // 2]


async def load(url: str, count: int, concurrency: int, warmup: int, timeout: float) -> Load:
    args = [str(count), str(concurrency), str(warmup)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", url, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"load generator did not finish within {timeout}s") from None
    if proc.returncode != 0:
        raise BenchError(f"load generator exited with {proc.returncode}")
    return msgspec.json.decode(out, type=Load)


async def measure(
    label: str, args: list[str], w: World, env: dict[str, str], port: int, **sizes: int
) -> tuple[Load, float]:
    """Starts the server, loads it, and checks every 200 left a message on the raw queue; the load
    and the server's CPU per answered request (µs)."""
    process = await Process.start(label, args, env)
    try:
        await wait_ok(process, f"http://127.0.0.1:{port}/readyz")
        cpu = tree_cpu_seconds(process)
        result = await load(f"http://127.0.0.1:{port}/hooks/{INSPERA_SOURCE}", timeout=600.0, **sizes)
        cpu = tree_cpu_seconds(process) - cpu
        process.check_alive()
        # The server's own CPU per answered request (warm-up included), beside its rate.
        cpu_us = cpu / (result.ok + sizes["warmup"]) * 1e6
    finally:
        await process.stop()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        queued, _ = await queue_counts(await connection.channel(), w.topology.raw_queue)
    if result.ok == 0 or queued < result.ok:
        raise BenchError(f"{label}: {result.ok} answered 200 but {queued} on the queue ({result.statuses})")
    return result, cpu_us


def tree_cpu_seconds(process: Process) -> float:
    """The CPU of the process and of its children (the processes a supervisor started; Linux /proc),
    so that several processes sharing a port count as one server."""
    total = process.cpu_seconds()
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == process.proc.pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def run(
    count: int,
    concurrency: int,
    warmup: int,
    rounds: int,
    *,
    traced: bool = False,
    processes: int = 1,
) -> IngressResult:
    """Baseline then ingress (then the ingress with tracing on, if `traced`; then both with
    `processes` processes, if above 1), `rounds` times alternating."""
    sizes = {"count": count, "concurrency": concurrency, "warmup": warmup}
    labels: tuple[str, ...] = (
        ("baseline", "ingress", "traced", "sampled") if traced else ("baseline", "ingress")
    )
    if processes > 1:
        labels += (f"ingress x{processes}", f"baseline x{processes}")
    measured: dict[str, list[Load]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    with sources_file() as sources:
        async with otlp.collector() as spans:
            for _ in range(rounds):
                for label in labels:
                    await _round(label, sources, spans, sizes, measured, cpu)
    return IngressResult(
        measured["ingress"],
        measured["baseline"],
        cpu["ingress"],
        cpu["baseline"],
        measured.get("traced", []),
        cpu.get("traced", []),
        spans.exports,
        measured.get("sampled", []),
        cpu.get("sampled", []),
        processes,
        measured.get(f"ingress x{processes}", []),
        cpu.get(f"ingress x{processes}", []),
        measured.get(f"baseline x{processes}", []),
        cpu.get(f"baseline x{processes}", []),
    )


async def _round(
    label: str,
    sources: Path,
    spans: otlp.Collector,
    sizes: dict[str, int],
    measured: dict[str, list[Load]],
    cpu: dict[str, list[float]],
) -> None:
    async with world() as w:
        port = free_port()
        env = w.env(
            RESULTBUS_SOURCES=str(sources),
            RESULTBUS_INGRESS_HOST="127.0.0.1",
            RESULTBUS_INGRESS_PORT=str(port),
            RESULTBUS_BENCH_INSPERA_SECRET=INSPERA_SECRET,
        )
        if label in ("traced", "sampled"):
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = spans.endpoint
        if label == "sampled":
            env.update(OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
        kind, _, times = label.partition(" x")
        processes = times or "1"
        env["RESULTBUS_INGRESS_PROCESSES"] = processes
        args = ["bench.baseline_ingress", str(port), processes] if kind == "baseline" else ["ingress"]
        result, cpu_us = await measure(label, args, w, env, port, **sizes)
    print(
        f"{label}: {result.rate:,.0f} webhooks/s, p50 {result.p50_ms:.2f} ms,"
        f" p99 {result.p99_ms:.2f} ms, {cpu_us:,.0f} us of server CPU per request,"
        f" {result.statuses}",
        flush=True,
    )
    measured[label].append(result)
    cpu[label].append(cpu_us)
