"""`make bench`: every figure of the performance table with its baseline, in one run, printed as one
table (figure, baseline, ratio, target, pass or short) and written as JSON to bench/results/.

Sizes are fixed so that the whole run stays bounded (about 5 minutes here); each part has its own
timeout. Figures on a shared 2-core machine are noisy: the ratios, measured in the same run, are the
figures to read; run it a few times (`python -m bench compare A.json B.json`) before believing a
change.
"""

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bench import delivery, ingress, latency, pipeline, router
from bench.world import ROOT

RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Sizes:
    ingress_requests: int = 10_000
    ingress_warmup: int = 1_000
    ingress_rounds: int = 3
    pipeline_requests: int = 5_000
    pipeline_rounds: int = 3
    router_messages: int = 20_000
    delivery_events: int = 2_000
    results_rate: float = 500.0
    results_webhooks: int = 5_000  # 10 s at 500/s
    subscriber_rate: float = 50.0
    subscriber_webhooks: int = 500  # 10 s at 50/s
    concurrency: int = 64
    # The ingress's processes on its own rows (issue 23's fallback), against the same baselines.
    ingress_processes: int = 2
    timeout: float = 300.0


class Row(msgspec.Struct, kw_only=True):
    key: str  # stable across runs: what `compare` matches on
    what: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_what: str = "-"
    ratio: float | None = None
    target: str
    passes: bool
    higher_is_better: bool = True
    note: str = ""


class Results(msgspec.Struct, kw_only=True):
    started_at: str
    seconds: float
    sizes: dict[str, float]
    rows: list[Row]
    rounds: dict[str, list[float]]


def ingress_rows(r: ingress.IngressResult, sizes: Sizes) -> tuple[list[Row], dict[str, list[float]]]:
    """The ingress's rows of the table, and their rounds, from its measurements."""
    rows: list[Row] = []
    rounds: dict[str, list[float]] = {}
    rounds["ingress_rate"] = [x.rate for x in r.ingress_rounds]
    rounds["ingress_baseline_rate"] = [x.rate for x in r.baseline_rounds]
    rounds["ingress_p99_ms"] = [x.p99_ms for x in r.ingress_rounds]
    rounds["ingress_baseline_p99_ms"] = [x.p99_ms for x in r.baseline_rounds]
    rounds["ingress_cpu_us"] = r.ingress_cpu_us
    rounds["ingress_baseline_cpu_us"] = r.baseline_cpu_us
    rows.append(
        Row(
            key="ingress_rate",
            what=f"ingress, 200 after confirm, {sizes.concurrency} conn",
            figure=r.ingress.rate,
            unit="req/s",
            baseline=r.baseline.rate,
            baseline_what="bare aiohttp + confirmed publish",
            ratio=r.rate_ratio,
            target=f">= {ingress.RATE_FLOOR:.2f} x baseline",
            passes=r.passes_rate,
            note=f"server CPU per request: ingress {r.ingress_cpu_median_us:,.0f} µs, baseline"
            f" {r.baseline_cpu_median_us:,.0f} µs ({r.cpu_ratio:.2f} x)",
        )
    )
    rows.append(
        Row(
            key="ingress_p99",
            what="ingress p99, same runs",
            figure=r.ingress_p99_ms,
            unit="ms",
            baseline=r.baseline_p99_ms,
            baseline_what="bare aiohttp + confirmed publish",
            ratio=r.p99_ratio,
            target=f"<= {ingress.P99_CEILING:.1f} x baseline",
            passes=r.passes_p99,
            higher_is_better=False,
        )
    )
    rounds["ingress_traced_rate"] = [x.rate for x in r.traced_rounds]
    rounds["ingress_traced_cpu_us"] = r.traced_cpu_us
    traced_cpu = statistics.median(r.traced_cpu_us)
    rows.append(
        Row(
            key="ingress_traced",
            what="ingress with tracing on (every call, OTLP/HTTP to a loopback collector)",
            figure=r.traced.rate,
            unit="req/s",
            baseline=r.ingress.rate,
            baseline_what="the ingress, tracing off",
            ratio=r.traced_ratio,
            target=f">= {ingress.TRACED_FLOOR:.2f} x tracing off",
            passes=r.traced_ratio >= ingress.TRACED_FLOOR and r.traced_exports > 0,
            note=f"tracing costs {traced_cpu - r.ingress_cpu_median_us:,.0f} µs of server CPU per request"
            f" ({traced_cpu:,.0f} vs {r.ingress_cpu_median_us:,.0f}); {r.traced_exports} exports received",
        )
    )
    rounds["ingress_sampled_rate"] = [x.rate for x in r.sampled_rounds]
    rounds["ingress_sampled_cpu_us"] = r.sampled_cpu_us
    sampled_cpu = statistics.median(r.sampled_cpu_us)
    rows.append(
        Row(
            key="ingress_sampled",
            what="ingress with tracing on, 1 call in 10 sampled (traceidratio 0.1)",
            figure=r.ingress.rate * r.sampled_ratio,
            unit="req/s",
            baseline=r.ingress.rate,
            baseline_what="the ingress, tracing off",
            ratio=r.sampled_ratio,
            target=f">= {ingress.SAMPLED_FLOOR:.2f} x tracing off",
            passes=r.sampled_ratio >= ingress.SAMPLED_FLOOR,
            note=f"{sampled_cpu - r.ingress_cpu_median_us:,.0f} µs of server CPU per request more",
        )
    )
    if r.processes > 1:
        multi_rows(r, sizes, rows, rounds)
    return rows, rounds


def multi_rows(
    r: ingress.IngressResult, sizes: Sizes, rows: list[Row], rounds: dict[str, list[float]]
) -> None:
    """Issue 23's fallback: the ingress with several processes sharing its port, against the
    one-process baseline of the same run (the issue's comparison), and the baseline likewise."""
    n = r.processes
    rounds[f"ingress_{n}_processes_rate"] = [x.rate for x in r.multi_rounds]
    rounds[f"ingress_{n}_processes_p99_ms"] = [x.p99_ms for x in r.multi_rounds]
    rounds[f"ingress_{n}_processes_cpu_us"] = r.multi_cpu_us
    rounds[f"ingress_baseline_{n}_processes_rate"] = [x.rate for x in r.multi_baseline_rounds]
    multi_cpu = statistics.median(r.multi_cpu_us)
    rows.append(
        Row(
            key=f"ingress_{n}_processes",
            what=f"ingress, {n} processes on the port, {sizes.concurrency} conn",
            figure=r.multi.rate,
            unit="req/s",
            baseline=r.baseline.rate,
            baseline_what="bare aiohttp + confirmed publish, one process",
            ratio=r.multi_rate_ratio,
            target=f">= {ingress.RATE_FLOOR:.2f} x baseline",
            passes=r.multi_rate_ratio >= ingress.RATE_FLOOR,
            note=f"server CPU per request {multi_cpu:,.0f} µs (all {n} processes and the supervisor)",
        )
    )
    rows.append(
        Row(
            key=f"ingress_{n}_processes_p99",
            what=f"ingress p99, {n} processes, same runs",
            figure=r.multi_p99_ms,
            unit="ms",
            baseline=r.baseline_p99_ms,
            baseline_what="bare aiohttp + confirmed publish, one process",
            ratio=r.multi_p99_ratio,
            target=f"<= {ingress.P99_CEILING:.1f} x baseline",
            passes=r.multi_p99_ratio <= ingress.P99_CEILING,
            higher_is_better=False,
        )
    )
    baseline_cpu = statistics.median(r.multi_baseline_cpu_us)
    rows.append(
        Row(
            key=f"ingress_{n}_processes_like_for_like",
            what=f"ingress, {n} processes, against the baseline with {n}",
            figure=r.multi.rate,
            unit="req/s",
            baseline=r.multi_baseline.rate,
            baseline_what=f"bare aiohttp + confirmed publish, {n} processes on the port",
            ratio=r.multi_like_ratio,
            target=f">= {ingress.RATE_FLOOR:.2f} x baseline",
            passes=r.multi_like_ratio >= ingress.RATE_FLOOR,
            note=f"server CPU per request: ingress {multi_cpu:,.0f} µs, baseline {baseline_cpu:,.0f} µs"
            f" ({multi_cpu / baseline_cpu:.2f} x)",
        )
    )


async def run(sizes: Sizes, progress: Callable[[str], None] = print) -> Results:
    started, wall = time.perf_counter(), datetime.now(UTC)
    rows: list[Row] = []
    rounds: dict[str, list[float]] = {}

    async def part(name: str, make: Callable[[], Awaitable[None]]) -> None:
        progress(f"== {name}")
        began = time.perf_counter()
        await make()
        progress(f"== {name}: {time.perf_counter() - began:.0f} s")

    async def ingress_part() -> None:
        r = await ingress.run(
            sizes.ingress_requests,
            sizes.concurrency,
            sizes.ingress_warmup,
            sizes.ingress_rounds,
            traced=True,
            processes=sizes.ingress_processes,
        )
        added_rows, added_rounds = ingress_rows(r, sizes)
        rows.extend(added_rows)
        rounds.update(added_rounds)

    async def pipeline_part() -> None:
        r = await pipeline.run(
            sizes.pipeline_requests, sizes.concurrency, sizes.pipeline_rounds, sizes.timeout
        )
        rounds["pipeline"], rounds["pipeline_peer"] = r.resultbus, r.peer
        rows.append(
            Row(
                key="pipeline",
                what="pipeline: ingress + 1 router, every 200 stored",
                figure=r.resultbus_median,
                unit="stored/s",
                baseline=r.peer_median,
                baseline_what="FastAPI + Celery, task inserts row",
                ratio=r.ratio,
                target=">= 4 x peer",
                passes=r.ratio >= 4.0,
            )
        )

    async def router_part() -> None:
        (r,) = await router.run(sizes.router_messages, [router.Config(256, 512)], sizes.timeout)
        rows.append(
            Row(
                key="router",
                what=f"router alone, {sizes.router_messages:,} pre-filled",
                figure=r.events_per_s,
                unit="events/s",
                baseline=r.baseline_per_s,
                baseline_what="bare consume + ack",
                ratio=r.ratio,
                target=f">= {router.FLOOR_EVENTS_PER_S:,.0f} events/s",
                passes=r.passes,
                note=f"router {r.router_cpu:.0%} of a core, machine {r.machine_cpu:.2f} cores busy",
            )
        )

    async def delivery_part() -> None:
        # One worker, and two as compose runs them (they share only the database and the queues).
        for workers in (1, 2):
            config = delivery.DeliveryConfig(
                events=sizes.delivery_events, workers=workers, latency_events=0, timeout=sizes.timeout
            )
            r = await delivery.run(config)
            rows.append(
                Row(
                    key="delivery" if workers == 1 else f"delivery_{workers}_workers",
                    what=f"delivery, {r.live} live subscribers, {workers} worker{'s' * (workers > 1)}",
                    figure=r.worker_rate,
                    unit="deliveries/s",
                    baseline=r.baseline_rate,
                    baseline_what="bare aiohttp client loop",
                    ratio=r.ratio,
                    target=f">= {delivery.floor(workers):,.0f}/s",
                    passes=r.worker_rate >= delivery.floor(workers),
                    note=f"burst p50 {r.burst.p50_ms:.0f} ms, p99 {r.burst.p99_ms:.0f} ms",
                )
            )

    async def subscriber_part() -> None:
        r = await latency.to_subscriber(sizes.subscriber_webhooks, sizes.subscriber_rate, sizes.timeout)
        rows.append(
            Row(
                key="latency_subscriber",
                what=f"latency 200 -> live subscriber, {r.rate:g}/s, + a 500 and a hanging one",
                figure=r.p99_ms,
                unit="ms p99",
                target=f"p99 <= {latency.SUBSCRIBER_P99_MS:.0f} ms",
                passes=r.p99_ms <= latency.SUBSCRIBER_P99_MS,
                higher_is_better=False,
                note=f"p50 {r.p50_ms:.1f} ms, max {r.max_ms:.0f} ms",
            )
        )

    async def results_part() -> None:
        r = await latency.to_results(sizes.results_webhooks, sizes.results_rate, sizes.timeout)
        rows.append(
            Row(
                key="latency_results",
                what=f"latency 200 -> results exchange, {r.rate:g}/s",
                figure=r.p99_ms,
                unit="ms p99",
                target=f"p99 <= {latency.RESULTS_P99_MS:.0f} ms",
                passes=r.p99_ms <= latency.RESULTS_P99_MS,
                higher_is_better=False,
                note=f"p50 {r.p50_ms:.1f} ms, max {r.max_ms:.0f} ms",
            )
        )

    await part("ingress", ingress_part)
    await part("pipeline", pipeline_part)
    await part("router", router_part)
    await part("delivery", delivery_part)
    await part("latency to a subscriber", subscriber_part)
    await part("latency to the results exchange", results_part)
    return Results(
        started_at=wall.isoformat(timespec="seconds"),
        seconds=time.perf_counter() - started,
        sizes={k: float(v) for k, v in vars(sizes).items()},
        rows=rows,
        rounds=rounds,
    )


def _number(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if unit.startswith("ms") else f"{value:,.0f} {unit}"


def table(results: Results) -> list[str]:
    head = f"{'what':<62} {'figure':>20} {'baseline':>18} {'ratio':>6}  {'target':<24} verdict"
    lines = ["", head, "-" * len(head)]
    for r in results.rows:
        base = "-" if r.baseline is None else _number(r.baseline, r.unit)
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"{r.what:<62} {_number(r.figure, r.unit):>20} {base:>18} {ratio:>6}  {r.target:<24}"
            f" {'pass' if r.passes else 'short'}"
        )
    lines.append("")
    for r in results.rows:
        extra = [s for s in (r.baseline_what if r.baseline is not None else "", r.note) if s]
        if extra:
            lines.append(f"{r.key}: {'; '.join(extra)}")
    lines.append(
        f"({results.seconds:.0f} s; medians of the rounds where there are rounds: {_rounds(results)})"
    )
    return lines


def _rounds(results: Results) -> str:
    return ", ".join(f"{k} [{' '.join(f'{v:,.0f}' for v in vs)}]" for k, vs in results.rounds.items())


def save(results: Results) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = results.started_at.replace(":", "").replace("+0000", "Z")
    path = RESULTS / f"{stamp}.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(results)) + b"\n")
    return path


def compare(a: Path, b: Path) -> list[str]:
    """Each row of B against the same row of A: figure, change, verdicts."""
    old = msgspec.json.decode(a.read_bytes(), type=Results)
    new = msgspec.json.decode(b.read_bytes(), type=Results)
    before = {r.key: r for r in old.rows}
    head = f"{'what':<62} {'A':>18} {'B':>18} {'change':>8} {'ratio A':>8} {'ratio B':>8}  verdict A -> B"
    lines = [f"A: {a} ({old.started_at})", f"B: {b} ({new.started_at})", head, "-" * len(head)]
    for r in new.rows:
        o = before.get(r.key)
        if o is None:
            lines.append(f"{r.what:<62} {'-':>18} {_number(r.figure, r.unit):>18}")
            continue
        change = (r.figure - o.figure) / o.figure if o.figure else 0.0
        better = change >= 0 if r.higher_is_better else change <= 0
        ra = "-" if o.ratio is None else f"{o.ratio:.2f}"
        rb = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"{r.what:<62} {_number(o.figure, o.unit):>18} {_number(r.figure, r.unit):>18}"
            f" {change:>+8.0%} {ra:>8} {rb:>8}  {'pass' if o.passes else 'short'} -> {'pass' if r.passes else 'short'}"
            f"{'' if better or abs(change) < 0.05 else '  (worse)'}"
        )
    return lines
