"""`make run`'s runner as a newcomer uses it: with RESULTBUS_METRICS_PORT set, every process gets a
port of its own (the documented scheme) and exports its own metrics, not another role's."""

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest

from ingress.processes import AUTO, resolve
from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from tests.support.paths import ROOT
from tests.support.services import AMQP_URL, DATABASE_URL, scratch_queue_name
from workers.delivery.settings import DeliverySettings

OFFSETS = {
    "ingress": 0, "router": 1, "delivery": 2, "checker": 3, "admin": 4, "fulfillment": 5, "retention": 6
}  # fmt: skip


def free_base(count: int) -> int:
    """A base port with `count` free ports above it (checked, not guaranteed to stay free)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


def local_env(topology: Topology, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
        RESULTBUS_LOG_JSON="1",
        PY=sys.executable,
        **extra,
    )
    return env


async def test_each_process_serves_its_own_metrics(topology: Topology, db_schema: str) -> None:
    for name in delivery_queue_names(topology, DeliverySettings().schedule):
        scratch_queue_name(topology, "", name=name)
    base = free_base(10)
    env = local_env(
        topology,
        db_schema,
        RESULTBUS_METRICS_PORT=str(base),
        RESULTBUS_INGRESS_PORT=str(base + 7),
        RESULTBUS_ADMIN_PORT=str(base + 8),
        RESULTBUS_FAKE_ITEP_PORT=str(base + 9),
        RESULTBUS_FAKE_GRADEBOOK_PORT=str(base + 10),
        RESULTBUS_FAKE_CALIPER_PORT=str(base + 11),
    )
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "migrate", env=env, cwd=ROOT
    )
    assert await asyncio.wait_for(migrate.wait(), 60) == 0
    runner = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "deploy" / "run-local.sh"), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    metrics: dict[str, str] = {}
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            for role, offset in OFFSETS.items():
                url = f"http://127.0.0.1:{base + offset}"
                while True:
                    try:
                        async with http.get(f"{url}/readyz") as ready:
                            if ready.status == 200 and (await ready.json())["role"] == role:
                                break
                    except aiohttp.ClientError:
                        pass
                    assert runner.returncode is None, "run-local.sh stopped"
                    await asyncio.sleep(0.2)
                async with http.get(f"{url}/metrics") as response:
                    metrics[role] = await response.text()
    finally:
        runner.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(runner.communicate(), 30)
    assert runner.returncode == 0, err.decode()[-2000:]
    assert f"http://127.0.0.1:{base + 2}/metrics" in out.decode()
    for role, text in metrics.items():
        if role != "ingress":  # below
            assert f'resultbus_ready{{role="{role}"}} 1.0' in text, role
    assert "resultbus_delivery_attempts" in metrics["delivery"]
    assert "resultbus_delivery_deliveries_total" in metrics["delivery"]
    assert "resultbus_checker_checks" in metrics["checker"]
    assert "resultbus_router_webhooks" in metrics["router"]
    # The ingress runs one process per usable CPU, each one's series on the one port.
    processes = resolve(AUTO)
    if processes == 1:  # a machine of one CPU: the one process, as before
        assert 'resultbus_ready{role="ingress"} 1.0' in metrics["ingress"]
    else:
        for index in range(processes):
            assert f'resultbus_ready{{process="{index}",role="ingress"}} 1.0' in metrics["ingress"]
        assert f"resultbus_ingress_processes {float(processes)}" in metrics["ingress"]
    for role in ("router", "delivery", "ingress", "admin"):
        assert "resultbus_checker_" not in metrics[role], role
    for role in ("delivery", "checker", "ingress", "admin"):
        assert "resultbus_router_" not in metrics[role], role
    assert "resultbus_delivery_" not in metrics["router"]


async def test_make_demo_shows_signed_deliveries(topology: Topology, db_schema: str) -> None:
    for name in delivery_queue_names(topology, DeliverySettings().schedule):
        scratch_queue_name(topology, "", name=name)
    base = free_base(12)
    # Non-default addresses: `make demo` finds the servers where `make run` put them, from the same
    # variables (it once needed RESULTBUS_INGRESS_URL/_ADMIN_URL besides, and blamed the stack).
    env = local_env(
        topology,
        db_schema,
        RESULTBUS_METRICS_PORT=str(base),
        RESULTBUS_INGRESS_PORT=str(base + 7),
        RESULTBUS_ADMIN_PORT=str(base + 8),
        RESULTBUS_FAKE_ITEP_PORT=str(base + 9),
        RESULTBUS_FAKE_GRADEBOOK_PORT=str(base + 10),
        RESULTBUS_FAKE_CALIPER_PORT=str(base + 11),
    )
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "migrate", env=env, cwd=ROOT
    )
    assert await asyncio.wait_for(migrate.wait(), 60) == 0
    runner = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "deploy" / "run-local.sh"), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            for offset in OFFSETS.values():
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"http://127.0.0.1:{base + offset}/readyz") as ready:
                            if ready.status == 200:
                                break
                    assert runner.returncode is None, "run-local.sh stopped"
                    await asyncio.sleep(0.2)
        demo = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "deploy" / "demo.py"), env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(demo.communicate(), 60)
    finally:
        runner.send_signal(signal.SIGTERM)
        await asyncio.wait_for(runner.communicate(), 30)
    text = out.decode()
    assert demo.returncode == 0, text
    assert "subscribed http://127.0.0.1:" in text and "through the admin API" in text
    delivered = [line for line in text.splitlines() if "signature verified" in line]
    assert len(delivered) == 4, text
    assert {line.split()[1].split(".")[0] for line in delivered} == {"itep", "inspera", "synap", "testpress"}
    assert all("schema=resultbus.result-event/v1" in line for line in delivered)
    assert "NOT VERIFIED" not in text
    # The gradebook: two candidates held until the demo maps them, then a grade for each sample that
    # carries one (Inspera's webhooks carry no grade: not written, and said so).
    gradebook = text.split("in the gradebook")[1].split("at the Caliper endpoint")[0]
    assert "held for the gradebook, its candidate not mapped to a student yet (2)" in text
    grades = [line.split() for line in gradebook.splitlines() if "(fully graded)" in line]
    assert sorted(g[0] for g in grades) == ["S-DEMO-0077", "S-DEMO-0918", "cand-0042"], gradebook
    assert "(not written: inspera completed on" in gradebook
    caliper = text.split("at the Caliper endpoint")[1].split("an iTEP test ID ordered")[0]
    assert caliper.count("GradeEvent Graded") == 3, caliper
    # The iTEP order: the fake iTEP assigns a test ID and sends the results back through the ingress.
    assert "POST /v1/itep/orders -> 202" in text and "completed" in text.split("iTEP test ID ordered")[1]


def test_a_bad_metrics_base_is_one_line() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "run-local.sh")],
        env=local_env(Topology("rbtest-never-used"), "never_used", RESULTBUS_METRICS_PORT="ninety-one"),
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run-local: RESULTBUS_METRICS_PORT: expected a port number, got 'ninety-one'"
    ]


def test_make_demo_without_a_pipeline_names_the_address_and_its_variables() -> None:
    port = free_base(1)
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "demo.py")],
        env=local_env(Topology("rbtest-never-used"), "never_used", RESULTBUS_ADMIN_PORT=str(port)),
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert line.startswith(f"admin API http://127.0.0.1:{port}: ") and "RESULTBUS_ADMIN_PORT" in line, line


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("RESULTBUS_DATABASE_URL", "postgresql://u:pg-secret@192.0.2.1:5432/resultbus"),
        ("RESULTBUS_AMQP_URL", "amqp://u:amqp-secret@192.0.2.1:5672/,amqp://u:amqp-secret@192.0.2.2:5673/"),
    ],
)
def test_ensure_services_probes_the_urls_the_processes_use(variable: str, url: str) -> None:
    # An address elsewhere that does not answer: said in one line, naming the variable, no password
    # (the script once probed 127.0.0.1 whatever the URLs said, and passed).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "ensure-services.sh")],
        env={**env, variable: url}, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert variable in line and "192.0.2.1:" in line and "secret" not in line, line
    # The same service spelt another way (the processes' own defaults, by name): found, nothing started.
    local = {
        "RESULTBUS_DATABASE_URL": DATABASE_URL.replace("127.0.0.1", "localhost"),
        "RESULTBUS_AMQP_URL": AMQP_URL,
    }
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "ensure-services.sh")],
        env={**env, variable: local[variable]}, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_every_variable_make_run_and_make_demo_read_is_documented() -> None:
    from tests.support.settings_docs import table_rows

    readme = (ROOT / "README.md").read_text()
    documented = {name for _, name, _, _ in table_rows()}
    documented |= set(re.findall(r"`(RESULTBUS_[A-Z_]*[A-Z])`", readme))
    for script in ("run-local.sh", "demo.py", "ensure-services.sh"):
        for name in set(re.findall(r"RESULTBUS_[A-Z_]*[A-Z]", (ROOT / "deploy" / script).read_text())):
            if name.startswith("RESULTBUS_DEMO_") and name != "RESULTBUS_DEMO_RECEIVER_PORT":
                continue  # deploy/demo.env's secrets
            assert name in documented, (script, name)
    for name in ("RESULTBUS_ROLES", "RESULTBUS_FAKE_ITEP_PORT", "RESULTBUS_DEMO_RECEIVER_PORT"):
        assert f"| `{name}` |" in readme, name


def test_the_readme_names_every_process_make_run_starts() -> None:
    script = (ROOT / "deploy" / "run-local.sh").read_text()
    [roles] = re.findall(r"\$\{RESULTBUS_ROLES:-([a-z ]+)\}", script)
    started = {
        *roles.split(),
        "ingress",
        "admin",
        "fake iTEP",
        "fake OneRoster gradebook",
        "fake Caliper endpoint",
    }
    assert "devkit.fake_itep" in script and "-m ingress" in script and "-m admin" in script
    assert "devkit.oneroster" in script and "devkit.caliper" in script
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"^make run +#(.*?)^make test", readme, re.S | re.M)
    assert said is not None
    words = " ".join(said[1].replace("#", " ").split())
    for process in started:
        assert process in words or (process == "admin" and "admin API" in words), (process, words)


def test_operations_md_gives_every_metrics_offset_make_run_uses() -> None:
    script = (ROOT / "deploy" / "run-local.sh").read_text()
    [table] = re.findall(r"declare -A offsets=\((.*)\)", script)
    offsets = {role: int(n) for role, n in re.findall(r"\[([a-z]+)\]=(\d+)", table)}
    assert offsets == OFFSETS
    [second] = re.findall(r"^next_offset=(\d+)$", script, re.M)
    text = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    said = {
        ("admin" if role == "admin API" else role): int(n)
        for n, role in re.findall(
            r"\+(\d+) (?:the )?(ingress|router|delivery|checker|admin API|fulfillment|retention)", text
        )
    }
    assert said == offsets
    assert f"from +{second} a second copy of a role" in text
