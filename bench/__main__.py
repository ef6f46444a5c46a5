"""`python -m bench [router|ingress]`: throughput figures against baselines measured in the same run.

Exits 0 whatever the figures (a floor missed is printed as FAIL); non-zero only when the bench itself
broke (a timeout, a process that died, counts that never add up).
"""

import argparse
import asyncio
import contextlib
import sys

from bench import ingress, router
from bench.loadgen import Load
from bench.world import BenchError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", choices=["all", "router", "ingress"], default="all")
    parser.add_argument("--messages", type=int, default=20_000, help="router: raw envelopes pre-filled")
    parser.add_argument(
        "--configs",
        default=router.DEFAULT_CONFIGS,
        help="router: batch:prefetch settings to try, comma-separated; the first is the headline",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="ingress: timed requests per server")
    parser.add_argument("--concurrency", type=int, default=64, help="ingress: concurrent connections")
    parser.add_argument("--warmup", type=int, default=1_000, help="ingress: untimed requests first")
    parser.add_argument("--rounds", type=int, default=2, help="ingress: alternate rounds, best kept")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is broken")
    parser.add_argument("--profile", metavar="FILE", help="router: py-spy flame graph (.svg) or raw (.txt)")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    try:
        lines = asyncio.run(_run(args))
    except (BenchError, TimeoutError) as error:
        print(f"bench broke: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


async def _run(args: argparse.Namespace) -> list[str]:
    lines = []
    if args.which in ("all", "router"):
        configs = [router.Config.parse(c) for c in args.configs.split(",")]
        lines += _router_table(await router.run(args.messages, configs, args.timeout, args.profile))
    if args.which in ("all", "ingress"):
        if ingress.ingress_available():
            result = await ingress.run(args.requests, args.concurrency, args.warmup, args.rounds)
            lines += _ingress_table(result, args.concurrency)
        else:
            lines += ["", "ingress: skipped, ingress/__main__.py does not exist yet"]
    return lines


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
    def row(label: str, load: Load) -> str:
        return f"{label:>9} {load.rate:>10,.0f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} {load.ok:>7,} {load.failed:>6,}"

    return [
        "",
        f"ingress: signed Inspera webhooks, {concurrency} connections, load generator in its own process",
        f"{'':>9} {'webhooks/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'200s':>7} {'other':>6}",
        row("baseline", r.baseline),
        row("ingress", r.ingress),
        f"rate ratio {r.rate_ratio:.2f}: {_verdict(r.passes_rate)} (>= {ingress.RATE_FLOOR:.2f});"
        f" p99 ratio {r.p99_ratio:.2f}: {_verdict(r.passes_p99)} (<= {ingress.P99_CEILING:.2f})",
    ]


if __name__ == "__main__":
    sys.exit(main())
