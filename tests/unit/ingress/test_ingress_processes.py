"""RESULTBUS_INGRESS_PROCESSES: its parsing, `auto` resolved from the CPUs a process may use (its
affinity, bounded by a cgroup quota), and the supervisor's merge of its processes' metrics."""

from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.env import SettingError
from ingress.merged_metrics import labelled, merge
from ingress.processes import AUTO, PROCESSES, quota_cpus, resolve, usable_cpus
from ingress.settings import IngressSettings


def test_unset_is_auto_and_auto_reads_as_auto() -> None:
    assert IngressSettings.from_env({}).processes == AUTO
    assert PROCESSES.read({"RESULTBUS_INGRESS_PROCESSES": " Auto "}) == AUTO
    assert PROCESSES.read({"RESULTBUS_INGRESS_PROCESSES": ""}) == AUTO
    assert PROCESSES.shown == "auto"


@pytest.mark.parametrize(("raw", "count"), [("1", 1), ("2", 2), (" 16 ", 16), ("256", 256)])
def test_a_number_of_processes(raw: str, count: int) -> None:
    assert IngressSettings.from_env({"RESULTBUS_INGRESS_PROCESSES": raw}).processes == count
    assert resolve(count) == count  # a number is taken as it is, whatever the machine


@pytest.mark.parametrize("raw", ["0", "-1", "257", "two", "1.5"])
def test_anything_else_is_refused_with_the_setting_named(raw: str) -> None:
    with pytest.raises(SettingError, match=r"^RESULTBUS_INGRESS_PROCESSES: expected auto or "):
        IngressSettings.from_env({"RESULTBUS_INGRESS_PROCESSES": raw})


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("max 100000", None), ("200000 100000", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5), ("", None)],
)
def test_a_cgroup_v2_quota(cpu_max: str, cpus: float | None) -> None:
    assert quota_cpus(cpu_max) == cpus


@pytest.mark.parametrize(
    ("affinity", "quota", "count"),
    [
        (2, None, 2),  # this machine, no container limit
        (64, 2.0, 2),  # a pod limited to 2 CPUs on a large node: 2, not 64
        (64, 1.5, 2),  # a part of a CPU is worth a process of its own
        (64, 0.5, 1),
        (1, 4.0, 1),  # pinned to one CPU (taskset): one, whatever the quota
        (0, None, 1),
        (1000, None, 256),
    ],
)
def test_auto_is_one_process_per_usable_cpu(affinity: int, quota: float | None, count: int) -> None:
    assert usable_cpus(affinity, quota) == count


def test_auto_reads_the_cgroup_quota_v2_then_v1() -> None:
    def v2(path: Path) -> str:
        if path.name == "cpu.max":
            return "100000 100000\n"
        raise FileNotFoundError(path)

    def v1(path: Path) -> str:
        if path.name == "cpu.cfs_quota_us":
            return "100000\n"
        if path.name == "cpu.cfs_period_us":
            return "100000\n"
        raise FileNotFoundError(path)

    def v1_unlimited(path: Path) -> str:
        return "-1\n" if path.name == "cpu.cfs_quota_us" else "100000\n"

    def none(path: Path) -> str:
        raise FileNotFoundError(path)

    assert resolve(AUTO, v2) == 1
    assert resolve(AUTO, v1) == 1
    assert resolve(AUTO, v1_unlimited) == resolve(AUTO, none) >= 1


@pytest.mark.parametrize(
    ("line", "out"),
    [
        ("up 1.0", 'up{process="3"} 1.0'),
        ('req_total{source="a",status="200"} 7.0', 'req_total{process="3",source="a",status="200"} 7.0'),
        ("x{} 2", 'x{process="3"} 2'),
        ("rate:sum 1.5e+06 1700000000", 'rate:sum{process="3"} 1.5e+06 1700000000'),
    ],
)
def test_a_sample_gets_its_process_label(line: str, out: str) -> None:
    assert labelled(line, "process", "3") == out


def exposition(requests: float, ready: float) -> str:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("resultbus_ingress_requests", "Calls.", ["source"], registry=registry)
    counter.labels("a").inc(requests)
    prometheus_client.Gauge("resultbus_ready", "Ready.", ["role"], registry=registry).labels("ingress").set(
        ready
    )
    histogram = prometheus_client.Histogram("resultbus_x_seconds", "X.", registry=registry, buckets=(0.1, 1))
    histogram.observe(0.5)
    return prometheus_client.generate_latest(registry).decode()


def test_the_merge_is_one_valid_exposition_with_every_process_labelled() -> None:
    merged = merge([("0", exposition(3, 1)), ("1", exposition(4, 0))])
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    # One block per family (a second HELP/TYPE for a name is what Prometheus refuses).
    assert merged.count("# TYPE resultbus_ready gauge") == 1
    assert merged.count("# HELP resultbus_ingress_requests_total") == 1
    ready = {s.labels["process"]: s.value for s in families["resultbus_ready"].samples}
    assert ready == {"0": 1.0, "1": 0.0}
    requests = {
        s.labels["process"]: s.value
        for s in families["resultbus_ingress_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests == {"0": 3.0, "1": 4.0}
    buckets = [s for s in families["resultbus_x_seconds"].samples if s.name.endswith("_bucket")]
    assert sorted((s.labels["process"], s.labels["le"]) for s in buckets) == [
        ("0", "+Inf"), ("0", "0.1"), ("0", "1.0"), ("1", "+Inf"), ("1", "0.1"), ("1", "1.0"),
    ]  # fmt: skip


def test_a_process_that_did_not_answer_is_left_out_and_none_is_empty() -> None:
    assert merge([]) == ""
    merged = merge([("1", exposition(4, 1))])
    assert 'process="1"' in merged and 'process="0"' not in merged
