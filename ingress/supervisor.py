"""Several ingress processes on one port (RESULTBUS_INGRESS_PROCESSES above 1): this process starts
them, serves their health and metrics as one, and stops them; it answers no vendor itself.

    settings checked here first        a bad one: one line, exit code 2, no process started
    N processes started                `python -m ingress.process`: each binds the vendor port with
                                       SO_REUSEPORT (the kernel spreads connections among them) and
                                       has its own broker connection and shutdown order
    RESULTBUS_METRICS_PORT             served here: /healthz 200 while every process answers its
                                       own, /readyz 200 while every process is ready, /metrics every
                                       process's series labelled `process="0"`, `"1"`, ...
    SIGTERM / SIGINT                   passed on to each; each drains its requests (every one still
                                       answered after its broker confirm) and exits; exit code 0
                                       when every one stopped cleanly
    a process exits by itself          one error line naming it, the others stopped as on SIGTERM,
                                       and exit code 1 (or the process's own code): the orchestrator
                                       restarts the whole, as it would a single process

Not restarted here: a process that dies is a bug or a lost dependency, which a restart loop inside
the container would hide from the orchestrator's restart count and back-off.
"""

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import prometheus_client
import structlog
from aiohttp import web

from common.env import SettingError
from common.logs import configure_logging
from common.service import HealthPortError, health_listener
from common.settings import ProcessSettings
from ingress.merged_metrics import merge

log = structlog.get_logger("ingress")

# A process's own health listener is on loopback and answers at once; one that does not within this
# is counted as not answering (not healthy, not ready), and a scrape goes on without its series.
_ASK_TIMEOUT = 2.0
# Beyond each process's own RESULTBUS_SHUTDOWN_TIMEOUT: closing its broker connection, exiting.
_STOP_MARGIN = 5.0


@dataclass
class Child:
    index: int
    process: asyncio.subprocess.Process
    health_port: int

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def supervise(count: int, env: Mapping[str, str]) -> int:
    """The whole life of the supervisor; returns its exit code."""
    from ingress.__main__ import read_settings  # the same checks as one process makes

    try:
        process = ProcessSettings.from_env(env)
        read_settings(env)
    except SettingError as error:
        print(f"ingress: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(process.log_level, json=process.log_json, role="ingress")
    try:
        return asyncio.run(_supervise(count, process, env))
    except HealthPortError as error:
        print(f"ingress: {error}", file=sys.stderr)
        return 2


async def _supervise(count: int, process: ProcessSettings, env: Mapping[str, str]) -> int:
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled.set)
    children: list[Child] = []
    # The processes hold the read end; it reads end-of-file once this process is gone, however.
    parent_read, parent_write = os.pipe()
    try:
        async with aiohttp.ClientSession() as http, _health(process, children, http, signalled):
            try:
                for index in range(count):
                    children.append(await _start(index, parent_read, env))
                os.close(parent_read)
                parent_read = -1
                log.info(
                    "ingress processes started",
                    processes=count,
                    pids=[c.process.pid for c in children],
                    metrics_port=process.metrics_port,
                )
                code = await _watch(children, signalled)
            finally:
                await _stop(children, process.shutdown_timeout + _STOP_MARGIN)
    finally:
        if parent_read >= 0:
            os.close(parent_read)
        os.close(parent_write)
    failed = [c for c in children if c.process.returncode not in (0, None)]
    if code == 0 and failed:
        code = 1
    log.info("ingress processes stopped", exit_codes=[c.process.returncode for c in children])
    return code


async def _start(index: int, parent_read: int, env: Mapping[str, str]) -> Child:
    # Bound here, listening before the process starts: its port is known and never free for another.
    health = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        health.bind(("127.0.0.1", 0))
        health.listen(64)
        fds = (health.fileno(), parent_read)
        args = ["--index", str(index), "--health-fd", str(fds[0]), "--parent-fd", str(parent_read)]
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingress.process", *args, env=dict(env), pass_fds=fds
        )
        return Child(index, child, int(health.getsockname()[1]))
    finally:
        health.close()  # the process has its own copy


async def _watch(children: list[Child], signalled: asyncio.Event) -> int:
    """Until a signal (0) or a process's exit (its code, at least 1)."""
    exits = {asyncio.create_task(c.process.wait()): c for c in children}
    signal_task = asyncio.create_task(signalled.wait())
    try:
        done, _ = await asyncio.wait({signal_task, *exits}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal_task.cancel()
        for task in exits:
            task.cancel()
    ended = [exits[task] for task in done if task in exits]
    # A terminal's Ctrl-C reaches every process of the group at once: one that stopped that way
    # stopped on the signal this process got too, not by itself.
    if not ended or signalled.is_set():
        return 0
    for child in ended:
        log.error(
            "an ingress process exited by itself: stopping the others",
            process=child.index,
            pid=child.process.pid,
            exit_code=child.process.returncode,
        )
    return max(1, *(c.process.returncode or 0 for c in ended))


async def _stop(children: list[Child], within: float) -> None:
    for child in children:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    waits = [c.process.wait() for c in children]
    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*waits)
    except TimeoutError:
        for child in children:
            if child.running:
                log.warning("an ingress process did not stop in time: killed", process=child.index)
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
        await asyncio.gather(*(c.process.wait() for c in children))


# -- health and metrics of them all ----------------------------------------------------------------


async def _ask(http: aiohttp.ClientSession, child: Child, path: str) -> tuple[int, str]:
    """(status, body) of the process's own endpoint; status 0 when it does not answer."""
    if not child.running:
        return 0, ""
    try:
        async with http.get(
            f"http://127.0.0.1:{child.health_port}/{path}",
            timeout=aiohttp.ClientTimeout(total=_ASK_TIMEOUT),
        ) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


@contextlib.asynccontextmanager
async def _health(
    process: ProcessSettings, children: list[Child], http: aiohttp.ClientSession, stopping: asyncio.Event
) -> AsyncIterator[None]:
    if process.metrics_port is None:
        yield
        return
    own = prometheus_client.CollectorRegistry(auto_describe=True)
    running = prometheus_client.Gauge(
        "resultbus_ingress_processes",
        "Ingress processes running under this supervisor (RESULTBUS_INGRESS_PROCESSES).",
        registry=own,
    )
    running.set_function(lambda: sum(c.running for c in children))

    async def every(path: str) -> list[tuple[int, str]]:
        return await asyncio.gather(*(_ask(http, c, path) for c in children))

    async def summary(path: str, ok: bool) -> web.Response:
        answers = await every(path)
        good = sum(status == 200 for status, _ in answers)
        ok = ok and bool(children) and good == len(children)
        status = {"healthz": "alive", "readyz": "ready"}[path] if ok else f"not {path[:-1]}"
        body = {"status": status, "role": "ingress", "processes": len(children), path[:-1]: good}
        return web.json_response(body, status=200 if ok else 503)

    async def healthz(_: web.Request) -> web.Response:
        return await summary("healthz", True)

    async def readyz(_: web.Request) -> web.Response:
        return await summary("readyz", not stopping.is_set())

    async def metrics(_: web.Request) -> web.Response:
        answers = await every("metrics")
        texts = [
            (str(c.index), text) for c, (status, text) in zip(children, answers, strict=True) if status == 200
        ]
        body = prometheus_client.generate_latest(own) + merge(texts).encode()
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    async with health_listener(app, process.metrics_host, process.metrics_port):
        yield
