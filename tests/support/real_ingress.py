"""A real `python -m ingress` process for the edge tests: its own sources file and settings, its
stderr in a file (read as JSON lines; a pipe nobody reads would block its logging), its metrics on a
port of their own, and raw TCP connections to it."""

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from schemas.topology import Topology
from tests.support.paths import ROOT
from tests.support.ports import free_port

SYNAP = """
[[source]]
id = "synap-main"
vendor = "synap"
event = "attempt.completed"
[source.auth]
kind = "none"
"""
Line = dict[str, Any]


@dataclass
class RealIngress:
    port: int
    metrics_port: int
    stderr: Path
    process: asyncio.subprocess.Process

    def lines(self) -> list[Line]:
        out = []
        for text in self.stderr.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(text))
            except ValueError:
                out.append({"event": text, "level": "not-json"})
        return out

    async def line(self, matches: Callable[[Line], bool], timeout: float = 10.0) -> Line:
        async with asyncio.timeout(timeout):
            while True:
                found = [line for line in self.lines() if matches(line)]
                if found:
                    return found[0]
                await asyncio.sleep(0.05)

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
        ):
            text = await response.text()
        total = 0.0
        for sample in re.finditer(rf"^{re.escape(name)}(?:\{{(.*?)\}})? (\S+)$", text, re.MULTILINE):
            found = dict(re.findall(r'(\w+)="([^"]*)"', sample[1] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(sample[2])
        return total

    async def metric_reaches(self, name: str, value: float, timeout: float = 10.0, **labels: str) -> None:
        async with asyncio.timeout(timeout):
            while await self.metric(name, **labels) != value:
                await asyncio.sleep(0.05)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@contextlib.asynccontextmanager
async def real_ingress(
    amqp_url: str,
    topology: Topology,
    tmp_path: Path,
    *,
    sources: str = SYNAP,
    stays_up: bool = True,
    **env: str,
) -> AsyncIterator[RealIngress]:
    """Yields once the ingress is ready (its metrics port's /readyz: with several processes, the
    supervisor's, ready when all are). `stays_up=False` for a test that stops or kills it itself."""
    (tmp_path / "sources.toml").write_text(sources)
    port, metrics_port = free_port(), free_port()
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    process_env.update(
        RESULTBUS_AMQP_URL=amqp_url,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_SOURCES=str(tmp_path / "sources.toml"),
        RESULTBUS_INGRESS_PORT=str(port),
        RESULTBUS_METRICS_PORT=str(metrics_port),
        RESULTBUS_LOG_JSON="1",
    )
    process_env.update(env)
    stderr = tmp_path / "ingress.stderr"
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingress", env=process_env, cwd=ROOT, stderr=sink, stdout=sink
        )
    ingress = RealIngress(port, metrics_port, stderr, process)
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{metrics_port}/readyz") as response:
                        if response.status == 200:
                            break
                assert process.returncode is None, stderr.read_text()
                await asyncio.sleep(0.1)
        yield ingress
        if stays_up:
            assert process.returncode is None, "the ingress exited"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await process.wait()


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> tuple[float, bytes]:
    """Reads until the server closes the connection; (seconds it took, what was read). Fails if the
    connection is still open after `timeout`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    data = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
    return loop.time() - started, data
