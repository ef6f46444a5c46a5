"""`make bench`'s ingress rows from measurements (no server run): the 2-process rows are against the
one-process baseline of the same run and against the baseline with 2, each with its own verdict, and
`compare` finds them by key."""

import pytest

from bench.ingress import IngressResult
from bench.loadgen import Load
from bench.suite import Sizes, ingress_rows


def load(rate: float, p99_ms: float) -> Load:
    return Load(ok=int(rate), failed=0, seconds=1.0, p50_ms=p99_ms / 3, p99_ms=p99_ms, statuses={})


def result(processes: int) -> IngressResult:
    three = [1.0, 1.0, 1.0]
    return IngressResult(
        ingress_rounds=[load(820, 60), load(830, 61), load(810, 59)],
        baseline_rounds=[load(1000, 50), load(990, 50), load(1010, 50)],
        ingress_cpu_us=[600, 610, 590],
        baseline_cpu_us=[480, 480, 480],
        traced_rounds=[load(700, 70)] * 3,
        traced_cpu_us=three,
        traced_exports=3,
        sampled_rounds=[load(800, 60)] * 3,
        sampled_cpu_us=three,
        processes=processes,
        multi_rounds=[load(1500, 40), load(1400, 45), load(1600, 42)] if processes > 1 else [],
        multi_cpu_us=[650, 650, 650] if processes > 1 else [],
        multi_baseline_rounds=[load(1700, 35)] * 3 if processes > 1 else [],
        multi_baseline_cpu_us=[520, 520, 520] if processes > 1 else [],
    )


def test_one_process_only_gives_the_rows_of_before() -> None:
    rows, rounds = ingress_rows(result(1), Sizes())
    assert [r.key for r in rows] == ["ingress_rate", "ingress_p99", "ingress_traced", "ingress_sampled"]
    assert "ingress_2_processes_rate" not in rounds


def test_two_processes_against_the_one_process_baseline_and_the_baseline_with_two() -> None:
    rows, rounds = ingress_rows(result(2), Sizes())
    by_key = {r.key: r for r in rows}
    multi = by_key["ingress_2_processes"]
    assert (multi.figure, multi.baseline) == (1500, 1000)
    assert multi.ratio == pytest.approx(1.5) and multi.passes
    p99 = by_key["ingress_2_processes_p99"]
    assert (p99.figure, p99.baseline, p99.higher_is_better) == (42, 50, False)
    assert p99.passes  # 0.84 x
    like = by_key["ingress_2_processes_like_for_like"]
    assert like.baseline == 1700 and like.ratio == pytest.approx(1500 / 1700) and not like.passes
    assert "1.25 x" in like.note  # 650 µs against 520
    assert rounds["ingress_2_processes_rate"] == [1500, 1400, 1600]
    assert rounds["ingress_baseline_2_processes_rate"] == [1700] * 3
    # The one-process rows are unchanged by the others.
    assert by_key["ingress_rate"].ratio == pytest.approx(820 / 1000)
