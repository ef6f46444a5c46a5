"""`make run`'s runner as a newcomer uses it: with RESULTBUS_METRICS_PORT set, every process gets a
port of its own (the documented scheme) and exports its own metrics, not another role's."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from tests.conftest import DATABASE_URL, scratch_queue_name
from workers.delivery.settings import DeliverySettings

ROOT = Path(__file__).resolve().parent.parent
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
        assert f'resultbus_ready{{role="{role}"}} 1.0' in text, role
    assert "resultbus_delivery_attempts" in metrics["delivery"]
    assert "resultbus_delivery_deliveries_total" in metrics["delivery"]
    assert "resultbus_checker_checks" in metrics["checker"]
    assert "resultbus_router_webhooks" in metrics["router"]
    for role in ("router", "delivery", "ingress", "admin"):
        assert "resultbus_checker_" not in metrics[role], role
    for role in ("delivery", "checker", "ingress", "admin"):
        assert "resultbus_router_" not in metrics[role], role
    assert "resultbus_delivery_" not in metrics["router"]


async def test_make_demo_shows_signed_deliveries(topology: Topology, db_schema: str) -> None:
    for name in delivery_queue_names(topology, DeliverySettings().schedule):
        scratch_queue_name(topology, "", name=name)
    base = free_base(10)
    ingress, admin = f"http://127.0.0.1:{base + 7}", f"http://127.0.0.1:{base + 8}"
    env = local_env(
        topology,
        db_schema,
        RESULTBUS_METRICS_PORT=str(base),
        RESULTBUS_INGRESS_PORT=str(base + 7),
        RESULTBUS_ADMIN_PORT=str(base + 8),
        RESULTBUS_INGRESS_URL=ingress,
        RESULTBUS_ADMIN_URL=admin,
        RESULTBUS_FAKE_ITEP_PORT=str(base + 9),
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
