"""The benchmark's command line, as docs/performance.md describes it (the benchmarks themselves are
never run by `make test`): a part run alone measures what the table says `make bench` measures."""

from bench.__main__ import build_parser
from bench.suite import Sizes
from tests.support.paths import ROOT


def test_the_ingress_part_alone_has_the_documented_sizes() -> None:
    args = build_parser().parse_args(["ingress"])
    sizes = Sizes()
    assert (args.requests, args.warmup, args.rounds, args.concurrency) == (
        sizes.ingress_requests,
        sizes.ingress_warmup,
        sizes.ingress_rounds,
        sizes.concurrency,
    )
    row = (
        f"{sizes.concurrency} keep-alive connections, {sizes.ingress_requests:,} timed requests after"
        f" {sizes.ingress_warmup:,} warm-up, 200 only after the broker's confirm; {sizes.ingress_rounds}"
        " alternating rounds"
    )
    assert row in (ROOT / "docs" / "performance.md").read_text()


def test_the_router_and_delivery_parts_alone_have_the_documented_sizes() -> None:
    sizes, text = Sizes(), (ROOT / "docs" / "performance.md").read_text()
    assert build_parser().parse_args(["router"]).messages == sizes.router_messages
    assert f"one router draining {sizes.router_messages:,} pre-filled" in text
    assert build_parser().parse_args(["delivery"]).events == sizes.delivery_events
    assert f"{sizes.delivery_events:,} events to 10 live subscribers" in text
