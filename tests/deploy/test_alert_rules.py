"""The alert rules pass Prometheus's own checker and unit tests (promtool), and name only metrics
that exist: resultbus's own (found in the code, or planned and listed in docs/operations.md) or the
RabbitMQ plugin's."""

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import ROOT, require

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "resultbus.json"

# Metrics of other exporters the rules and the dashboard may use.
FOREIGN = re.compile(r"^(rabbitmq_|up$|kube_|container_)")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = _promtool("test", "rules", "alerts_test.yml", cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    rules["groups"][0]["rules"][0]["expr"] = "sum(rate(resultbus_ingress_requests_total[5m]) >"
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(rules))
    done = _promtool("check", "rules", "broken.yml", cwd=tmp_path)
    assert done.returncode != 0


def _exported_names() -> set[str]:
    """Metric names as Prometheus sees them, from every prometheus_client metric in the code (and
    every metric family a collector of ours builds when scraped, ingress/metrics.py)."""
    names: set[str] = set()
    pattern = re.compile(
        r"(?:prometheus_client\.(Counter|Gauge|Histogram)|(Counter|Gauge|Histogram)MetricFamily)\(\s*\"([a-z_]+)\"",
        re.S,
    )
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        for metric, family, name in pattern.findall(path.read_text()):
            kind = metric or family
            if kind == "Counter":
                names.add(name.removesuffix("_total") + "_total")
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                names.add(name)
    return names


def _used(text: str) -> set[str]:
    return set(re.findall(r"\b((?:resultbus|rabbitmq)_[a-z_]+|up)\b(?=[{\[(\s)]|$)", text))


def test_every_metric_used_exists_or_is_planned() -> None:
    exported = _exported_names()
    expressions = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions += [t["expr"] for p in panels for t in p.get("targets", [])]
    used = set().union(*(_used(e) for e in expressions))
    ours = {name for name in used if not FOREIGN.match(name)}
    assert ours - exported == set()


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses PromQL only in rule files: each panel query becomes a recording rule.
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    rules = [
        {"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": t["expr"]}
        for p in panels
        for t in p["targets"]
    ]
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    done = _promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
