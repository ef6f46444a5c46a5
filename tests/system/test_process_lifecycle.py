"""The process lifecycle (common/service.py) as an operator meets it, through the real entry points:
bad settings, a taken metrics port, a work task that dies, a start that cannot finish,
SIGTERM during start-up, and /readyz following the broker."""

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from devkit.proxy import TcpProxy
from schemas.topology import Topology
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.services import AMQP_URL, DATABASE_URL

SOURCES = """
[[source]]
id = "synap-open"
vendor = "synap"
event = "attempt.completed"
[source.auth]
kind = "none"
"""

COMMANDS = {
    "router": ["-m", "workers", "router"],
    "delivery": ["-m", "workers", "delivery"],
    "checker": ["-m", "workers", "checker"],
    "fulfillment": ["-m", "workers", "fulfillment"],
    "retention": ["-m", "workers", "retention"],
    "ingress": ["-m", "ingress"],
    "admin": ["-m", "admin"],
}
# One setting of each role's own, with a value it cannot take (--help: tests/docs/test_settings_help.py).
BAD = {
    "router": ("RESULTBUS_PREFETCH", "lots"),
    "delivery": ("RESULTBUS_DELIVERY_SCHEDULE", "0,soon"),
    "checker": ("RESULTBUS_CHECK_INTERVAL", "often"),
    "fulfillment": ("RESULTBUS_ITEP_TIMEOUT", "-5s"),
    "retention": ("RESULTBUS_RETENTION_BATCH", "many"),
    "ingress": ("RESULTBUS_INGRESS_PORT", "http"),
    "admin": ("RESULTBUS_ADMIN_PORT", "http"),
}


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES)
    env.update(
        RESULTBUS_AMQP_URL=AMQP_URL,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_SOURCES=str(sources),
        RESULTBUS_ADMIN_NO_AUTH="1",
        RESULTBUS_LOG_LEVEL="ERROR",
    )
    env.update(extra)
    return env


def own_lines(err: str) -> list[str]:
    """stderr without the JSON log lines: what the lifecycle itself printed."""
    return [line for line in err.splitlines() if not line.startswith("{")]


async def run(role: str, env: dict[str, str], *args: str, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *COMMANDS[role], *args, env=env, cwd=ROOT, stdout=-1, stderr=-1
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("role", sorted(COMMANDS))
async def test_a_bad_setting_is_one_line_and_exit_2(role: str, tmp_path: Path) -> None:
    name, value = BAD[role]
    code, _, err = await run(role, environment(tmp_path, **{name: value}))
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"{role}: bad setting: {name}: ")
    assert err.count(repr(value.split(",")[-1])) == 1, err  # the value named once, not twice


@pytest.mark.parametrize("role", ["router", "ingress", "admin"])
async def test_a_metrics_port_in_use_is_one_clean_line_and_exit_2(role: str, tmp_path: Path) -> None:
    # Guards the wording fix in service.py `health_server`: before it, asyncio's own message was
    # appended ("cannot listen on X: error while attempting to bind on address (...): ...").
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run(role, environment(tmp_path, RESULTBUS_METRICS_PORT=str(port)))
    assert code == 2, err
    assert err == (
        f"{role}: RESULTBUS_METRICS_PORT={port}: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


@pytest.mark.parametrize("role", ["checker", "retention"])
async def test_a_work_task_that_dies_ends_the_process_with_one_line(
    role: str, tmp_path: Path, db_schema: str
) -> None:
    # A schema where no migration was applied: the role's loop cannot do its work. (An idle router
    # lives on there: it touches no table until a webhook comes, and then dead-letters it.)
    code, _, err = await run(role, environment(tmp_path, RESULTBUS_DATABASE_SCHEMA=db_schema))
    assert code == 1, err
    (line,) = own_lines(err)
    assert line == f"{role}: {role} stopped by itself (see the error logged before)", err


async def test_a_start_that_cannot_open_its_broker_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # Guards service.py `_serve`: a resource that cannot be opened was a traceback before.
    closed = free_port()
    env = environment(tmp_path, RESULTBUS_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{closed}/")
    code, _, err = await run("delivery", env)
    assert code == 1, err
    assert "Traceback" not in err
    # The last line is the lifecycle's (aiormq logs its own line through the standard logging).
    line = own_lines(err)[-1]
    assert line.startswith("delivery: could not start: ") and "Connection refused" in line, err


@pytest.mark.parametrize("role", ["router", "delivery"])
async def test_sigterm_during_start_up_exits_cleanly(role: str, tmp_path: Path) -> None:
    # Guards service.py `_serve` (a signal stops a start still waiting) and amqp.py `connect_robust`
    # (a given-up first connection closes its reconnect loop): before them the process hung on.
    with socket.socket() as mute:  # accepts TCP, never speaks AMQP: start-up waits
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        url = f"amqp://guest:guest@127.0.0.1:{mute.getsockname()[1]}/"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *COMMANDS[role],
            env=environment(tmp_path, RESULTBUS_AMQP_URL=url),
            cwd=ROOT,
            stderr=-1,
        )
        try:
            await asyncio.sleep(2.0)
            assert process.returncode is None  # still starting
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            async with asyncio.timeout(10):
                _, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()
    assert time.monotonic() - started < 5.0
    assert own_lines(err.decode()) == []


async def readyz(http: aiohttp.ClientSession, port: int) -> int:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def wait_for_status(http: aiohttp.ClientSession, port: int, status: int, timeout: float) -> None:
    seen: list[int] = []
    try:
        async with asyncio.timeout(timeout):
            while (got := await readyz(http, port)) != status:
                seen.append(got)
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"/readyz never {status}: {sorted(set(seen))}") from None


async def test_readyz_is_503_while_starting(tmp_path: Path) -> None:
    # Guards service.py `Service.ready`: before start-up was done it read "no check registered yet"
    # as ready, so /readyz said 200 while the broker connection was still being opened.
    metrics = free_port()
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        env = environment(
            tmp_path,
            RESULTBUS_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{mute.getsockname()[1]}/",
            RESULTBUS_METRICS_PORT=str(metrics),
        )
        router = await asyncio.create_subprocess_exec(sys.executable, *COMMANDS["router"], env=env, cwd=ROOT)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_for_status(http, metrics, 503, 20)
                await asyncio.sleep(1.0)
                assert await readyz(http, metrics) == 503
        finally:
            router.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                assert await router.wait() == 0


async def test_readyz_follows_the_broker(tmp_path: Path, topology: Topology, migrated: str) -> None:
    target = urlsplit(AMQP_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    proxy_port = await proxy.start()
    metrics = free_port()
    env = environment(
        tmp_path,
        RESULTBUS_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{proxy_port}/?reconnect_interval=0.3",
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_SCHEMA=migrated,
        RESULTBUS_METRICS_PORT=str(metrics),
    )
    router = await asyncio.create_subprocess_exec(sys.executable, *COMMANDS["router"], env=env, cwd=ROOT)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for_status(http, metrics, 200, 20)
            proxy.cut()
            await wait_for_status(http, metrics, 503, 10)
            assert router.returncode is None  # unready, not dead
            proxy.restore()
            await wait_for_status(http, metrics, 200, 15)
        router.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await router.wait() == 0
    finally:
        if router.returncode is None:
            router.kill()
            await router.wait()
        await proxy.close()
