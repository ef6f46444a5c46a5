"""`python -m bench [all|router|ingress|pipeline|delivery|soak|console]`: figures against baselines
measured in the same run, and the soak run. The default, `all` (what `make bench` runs), is every
figure of the performance table, printed as one table and written to bench/results/<time>.json;
`python -m bench compare A.json B.json` prints the change between two such files.

The figures exit 0 whatever they are (a floor missed is printed as FAIL); non-zero only when the
bench itself broke (a timeout, a process that died, counts that never add up). The soak exits
non-zero when its bar fails: every webhook answered 200 stored, none twice, the counts adding up.
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
from pathlib import Path

from bench import console, delivery, ingress, pipeline, router, soak, suite
from bench.loadgen import Load
from bench.soak_calls import Mix
from bench.world import BenchError

DEFAULT_TIMEOUT = 300.0


def build_parser() -> argparse.ArgumentParser:
    # The defaults of the parts run alone are those of `make bench` (suite.Sizes), which
    # docs/performance.md describes.
    sizes = suite.Sizes()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        choices=["all", "router", "ingress", "pipeline", "delivery", "soak", "console"],
        default="all",
    )
    parser.add_argument(
        "--messages", type=int, default=sizes.router_messages, help="router: raw envelopes pre-filled"
    )
    parser.add_argument(
        "--configs",
        default=router.DEFAULT_CONFIGS,
        help="router: batch:prefetch settings to try, comma-separated; the first is the headline",
    )
    parser.add_argument(
        "--requests", type=int, default=sizes.ingress_requests, help="ingress: timed requests per server"
    )
    parser.add_argument(
        "--concurrency", type=int, default=sizes.concurrency, help="ingress, pipeline: concurrent connections"
    )
    parser.add_argument(
        "--warmup", type=int, default=sizes.ingress_warmup, help="ingress: untimed requests first"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=sizes.ingress_rounds,
        help="ingress, pipeline: alternate rounds, medians kept",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds before a run is broken (soak: 600)"
    )
    parser.add_argument("--profile", metavar="FILE", help="router: py-spy flame graph (.svg) or raw (.txt)")
    parser.add_argument("--webhooks", type=int, default=20_000, help="soak: webhooks sent")
    parser.add_argument("--rate", type=float, default=300.0, help="soak: webhooks per second")
    parser.add_argument("--cut-seconds", type=float, default=4.0, help="soak: broker path cut this long")
    parser.add_argument("--duplicates", type=float, default=0.05, help="soak: share of exact duplicates")
    parser.add_argument("--bad-signatures", type=float, default=0.02, help="soak: share answered 401")
    parser.add_argument("--undecodable", type=float, default=0.01, help="soak: share stored as rejected")
    parser.add_argument(
        "--events", type=int, default=sizes.delivery_events, help="delivery: events published"
    )
    parser.add_argument(
        "--dead",
        choices=["none", "hanging", "refused"],
        default="none",
        help="delivery: whether one of the 10 subscribers is dead, and how",
    )
    parser.add_argument("--workers", type=int, default=1, help="delivery: worker processes")
    parser.add_argument("--seed-events", type=int, default=100_000, help="console: events stored")
    parser.add_argument("--page-rounds", type=int, default=30, help="console: timed loads per page")
    parser.add_argument(
        "--without-indexes",
        action="store_true",
        help="console: drop the console's indexes (migrations 008, 011) first",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        if "-h" in argv or "--help" in argv:
            print(
                "usage: python -m bench compare A.json B.json: each row of B against A (bench/results/*.json)"
            )
            return 0
        if len(argv) != 3:
            print("usage: python -m bench compare A.json B.json", file=sys.stderr)
            return 2
        print("\n".join(suite.compare(Path(argv[1]), Path(argv[2]))))
        return 0
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if args.which == "soak":
        return _soak(args)
    try:
        lines = asyncio.run(_run(args))
    except (BenchError, TimeoutError) as error:
        print(f"bench broke: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


async def _run(args: argparse.Namespace) -> list[str]:
    lines = []
    if args.which == "all":
        results = await suite.run(suite.Sizes(timeout=args.timeout))
        path = suite.save(results)
        return [
            *suite.table(results),
            f"figures written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}",
        ]
    if args.which == "pipeline":
        r = await pipeline.run(suite.Sizes().pipeline_requests, args.concurrency, args.rounds, args.timeout)
        lines += [
            "",
            f"pipeline: resultbus {r.resultbus_median:,.0f} stored/s (rounds {r.resultbus}),"
            f" FastAPI + Celery {r.peer_median:,.0f} rows/s (rounds {r.peer}), ratio {r.ratio:.2f} (target >= 4)",
        ]
    if args.which == "router":
        configs = [router.Config.parse(c) for c in args.configs.split(",")]
        lines += _router_table(await router.run(args.messages, configs, args.timeout, args.profile))
    if args.which == "ingress":
        if ingress.ingress_available():
            result = await ingress.run(args.requests, args.concurrency, args.warmup, args.rounds)
            lines += _ingress_table(result, args.concurrency)
        else:
            lines += ["", "ingress: skipped, ingress/__main__.py does not exist yet"]
    if args.which == "console":
        lines += console.table(
            await console.run(args.seed_events, args.page_rounds, without_indexes=args.without_indexes),
            args.seed_events,
            args.without_indexes,
        )
    if args.which == "delivery":
        config = delivery.DeliveryConfig(
            events=args.events, dead=args.dead, workers=args.workers, timeout=args.timeout
        )
        lines += _delivery_table(await delivery.run(config))
    return lines


def _soak(args: argparse.Namespace) -> int:
    config = soak.SoakConfig(
        webhooks=args.webhooks,
        rate=args.rate,
        cut_seconds=args.cut_seconds,
        timeout=args.timeout if args.timeout != DEFAULT_TIMEOUT else soak.SoakConfig.timeout,
        mix=Mix(args.duplicates, args.bad_signatures, args.undecodable),
    )
    try:
        verdict = asyncio.run(soak.run(config))
    except (BenchError, TimeoutError) as error:
        print(f"soak broke: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print("\n".join(verdict.lines))
    print(f"soak: {'PASS' if not verdict.failed else f'FAIL ({verdict.failed} checks failed)'}")
    return 1 if verdict.failed else 0


def _delivery_table(r: delivery.DeliveryResult) -> list[str]:
    c = r.config
    return [
        "",
        f"delivery: {c.events:,} events to {c.subscribers} subscribers ({r.live} live"
        f"{'' if c.dead == 'none' else f', 1 {c.dead}'}), {c.workers} `workers delivery` process(es);"
        f" baseline: a bare aiohttp loop, same bodies signed, same {r.live} live subscribers, the"
        " workers' per-endpoint concurrency together",
        f"{'':>16} {'deliveries/s':>12} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        f"{'baseline':>16} {r.baseline_rate:>12,.0f} {1:>6.2f} {r.baseline.p50_ms:>8.1f} {r.baseline.p99_ms:>8.1f}"
        f" {'':>8}  (one POST, client side)",
        f"{'delivery burst':>16} {r.worker_rate:>12,.0f} {r.ratio:>6.2f} {r.burst.p50_ms:>8.1f} {r.burst.p99_ms:>8.1f}"
        f" {r.burst.max_ms:>8.1f}  (published -> received, all {c.events:,} published at once)",
        f"{'delivery steady':>16} {c.latency_rate * r.live:>12,.0f} {'':>6} {r.steady.p50_ms:>8.1f}"
        f" {r.steady.p99_ms:>8.1f} {r.steady.max_ms:>8.1f}  (offered, not measured; published -> received,"
        f" {c.latency_events:,} events at {c.latency_rate:g}/s)",
    ]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _router_table(results: list[router.RouterResult]) -> list[str]:
    best = max(results, key=lambda r: r.events_per_s)
    lines = [
        "",
        f"router: {results[0].messages:,} mixed raw webhooks, end to end (stored + published)",
        f"{'batch/prefetch':>14} {'events/s':>9} {'baseline/s':>10} {'ratio':>6} {'cpu':>5} {'machine':>7}  floor",
    ]
    for r in results:
        lines.append(
            f"{r.config!s:>14} {r.events_per_s:>9,.0f} {r.baseline_per_s:>10,.0f} {r.ratio:>6.2f}"
            f" {r.router_cpu:>5.0%} {r.machine_cpu:>7.2f}  {_verdict(r.passes)}"
            f" (>= {router.FLOOR_EVENTS_PER_S:,.0f}/s)"
        )
    lines.append(
        f"best setting: RESULTBUS_BATCH_SIZE={best.config.batch_size} RESULTBUS_PREFETCH={best.config.prefetch}"
    )
    lines.append(
        "(cpu: router process, share of one core; machine: busy cores of 2; baseline: bare consume+ack)"
    )
    return lines


def _ingress_table(r: ingress.IngressResult, concurrency: int) -> list[str]:
    def row(label: str, load: Load, p99_ms: float, cpu_us: list[float]) -> str:
        median = statistics.median(cpu_us)
        return (
            f"{label:>9} {load.rate:>10,.0f} {load.p50_ms:>8.2f} {p99_ms:>8.2f} {load.ok:>7,} {load.failed:>6,}"
            f" {median:>8,.0f}  ({', '.join(f'{c:,.0f}' for c in cpu_us)})"
        )

    def spread(rounds: list[Load]) -> str:
        return f"{min(x.rate for x in rounds):,.0f}-{max(x.rate for x in rounds):,.0f}"

    return [
        "",
        f"ingress: signed Inspera webhooks, {concurrency} connections, load generator in its own process",
        f"{'':>9} {'webhooks/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'200s':>7} {'other':>6} {'CPU µs/req':>8}  (rounds)",
        row("baseline", r.baseline, r.baseline_p99_ms, r.baseline_cpu_us),
        row("ingress", r.ingress, r.ingress_p99_ms, r.ingress_cpu_us),
        f"rate ratio {r.rate_ratio:.2f}: {_verdict(r.passes_rate)} (>= {ingress.RATE_FLOOR:.2f});"
        f" p99 ratio {r.p99_ratio:.2f}: {_verdict(r.passes_p99)} (<= {ingress.P99_CEILING:.2f});"
        f" CPU per request ratio {r.cpu_ratio:.2f}",
        f"(medians of {len(r.ingress_rounds)} alternating rounds; rates: baseline {spread(r.baseline_rounds)},"
        f" ingress {spread(r.ingress_rounds)}; CPU: the server process's user + system time per request)",
    ]


if __name__ == "__main__":
    sys.exit(main())
