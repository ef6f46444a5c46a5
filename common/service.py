"""One process lifecycle for every entry point (ingress, admin and each worker role).

    settings read and checked (a bad one: one line, exit code 2)   before any event loop exists
    logging, uvloop                                                 once, here
    resources opened in order (`Service.open`)                      closed in reverse, always
    work tasks started (`Service.run`)                              each gets the `stopping` event
    SIGTERM / SIGINT                                                -> shutdown, in this order:
        1. unready: /readyz answers 503 (and `resultbus_ready` drops to 0)
        2. `stopping` is set: every task stops taking work and finishes what it holds
        3. drain: up to RESULTBUS_SHUTDOWN_TIMEOUT for the tasks to return
        4. cancel what is still running
        5. close the resources in reverse order of opening

A work task that ends by itself (a bug, a missing migration) ends the process too, with one error
line naming it and exit code 1: a process that lives on without doing its work is worse than one
that is restarted. Transient failures are the task's own business (it retries), never a reason to end.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import prometheus_client
import structlog
from aiohttp import web

from common import tracing
from common.env import DURATION_SYNTAX, Group, SettingError, process_env
from common.logs import configure_logging
from common.settings import PROCESS, ProcessSettings

log = structlog.get_logger("service")

S = TypeVar("S")
T = TypeVar("T")

READY = prometheus_client.Gauge(
    "resultbus_ready", "1 while the process is ready for work (broker and database reachable).", ["role"]
)
UP_SINCE = prometheus_client.Gauge(
    "resultbus_started_seconds", "Unix time the process started (a restart resets it).", ["role"]
)


class Service:
    """The resources and work tasks of one running process."""

    def __init__(self, role: str, process: ProcessSettings, stack: contextlib.AsyncExitStack) -> None:
        self.role = role
        self.process = process
        self.stopping = asyncio.Event()
        self._stack = stack
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._ready_checks: list[Callable[[], bool]] = []
        # Not ready until start-up is done: /readyz answers before the resources are open, and a
        # check not yet registered must not read as "all checks pass".
        self._started = False

    async def open(self, resource: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enters `resource` now; it is exited at shutdown, after the work tasks, in reverse order."""
        return await self._stack.enter_async_context(resource)

    def on_close(self, close: Callable[[], Awaitable[Any]]) -> None:
        self._stack.push_async_callback(close)

    def ready_when(self, check: Callable[[], bool]) -> None:
        """/readyz and `resultbus_ready` are true only while every such check is."""
        self._ready_checks.append(check)

    @property
    def ready(self) -> bool:
        return self._started and not self.stopping.is_set() and all(check() for check in self._ready_checks)

    def run(self, name: str, work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Starts a work task. It must return soon after `stopping` is set, having finished or handed
        back what it holds; returning before that ends the process."""
        self._tasks[asyncio.create_task(_as_coroutine(work(self.stopping)), name=name)] = name

    async def watch(self, signalled: asyncio.Event) -> list[str]:
        """Until a signal, or until a work task ends by itself; returns the names of those that did."""
        waiting: asyncio.Task[Any] = asyncio.create_task(signalled.wait())
        try:
            done, _ = await asyncio.wait({waiting, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        died = [task for task in done if task is not waiting]
        for task in died:
            error = None if task.cancelled() else task.exception()
            log.error("a task stopped by itself", task=self._tasks[task], error=repr(error), exc_info=error)
        return [self._tasks[task] for task in died]

    async def shutdown(self, drain: float) -> None:
        """Unready, tasks told to stop, `drain` seconds for them to return, then cancelled."""
        self.stopping.set()
        pending = {task for task in self._tasks if not task.done()}
        if pending:
            log.info("shutting down", tasks=sorted(self._tasks[t] for t in pending), drain_seconds=drain)
            _, late = await asyncio.wait(pending, timeout=drain)
            for task in late:
                log.warning("shutdown timeout reached, cancelling", task=self._tasks[task])
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for task in pending:
            if not task.cancelled() and (error := task.exception()) is not None:
                log.error("task failed while stopping", task=self._tasks[task], error=repr(error))


@contextlib.asynccontextmanager
async def running(
    role: str,
    settings: S,
    start: Callable[["Service", S], Awaitable[None]],
    process: ProcessSettings | None = None,
    health_socket: socket.socket | None = None,
) -> AsyncIterator[Service]:
    """A role running in this event loop: started on entry; on exit shut down in order and closed.
    What `serve` runs, and what tests and benchmarks run in-process. `health_socket`: a listening
    socket handed over by a supervisor, served instead of RESULTBUS_METRICS_PORT."""
    process = process or ProcessSettings()
    async with contextlib.AsyncExitStack() as stack:
        service = Service(role, process, stack)
        READY.labels(role).set_function(lambda: 1.0 if service.ready else 0.0)
        UP_SINCE.labels(role).set_to_current_time()
        await stack.enter_async_context(
            health_server(service, process.metrics_host, process.metrics_port, health_socket)
        )
        try:
            await start(service, settings)
            service._started = True
            yield service
        finally:
            await service.shutdown(process.shutdown_timeout)


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


class TaskDied(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} stopped by itself (see the error logged before)")
        self.name = name


class HealthPortError(Exception):
    pass


def serve(
    role: str,
    *,
    description: str,
    settings: Sequence[Group],
    read_settings: Callable[[Mapping[str, str]], S],
    start: Callable[[Service, S], Awaitable[None]],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    prog: str | None = None,
    health_socket: socket.socket | None = None,
) -> int:
    """The whole life of one process; returns its exit code. `settings` declares what `read_settings`
    reads (beside every process's own), for `--help`."""
    env = process_env() if env is None else env
    parse_command_line(role, description, settings, argv, prog)
    try:
        process, read = ProcessSettings.from_env(env), read_settings(env)
    except SettingError as error:
        print(f"{role}: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(process.log_level, json=process.log_json, role=role)
    try:
        tracing.configure(role, env)
    except SettingError as error:
        print(f"{role}: bad setting: {error}", file=sys.stderr)
        return 2
    run = _event_loop_runner()
    try:
        run(_serve(role, process, read, start, health_socket))
    except HealthPortError as error:
        print(f"{role}: {error}", file=sys.stderr)
        return 2
    except TaskDied as died:
        print(f"{role}: {died}", file=sys.stderr)
        return 1
    except StartupError as error:
        print(f"{role}: {error}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown()  # what is still batched is exported before the process ends
    return 0


def parse_command_line(
    role: str, description: str, settings: Sequence[Group], argv: Sequence[str] | None, prog: str | None
) -> None:
    """A role takes no arguments: `--help` lists its settings and exits, anything else is refused."""
    parser = argparse.ArgumentParser(
        prog=prog or f"python -m {role}",
        description=description,
        epilog=settings_help([PROCESS, *settings]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)


class StartupError(Exception):
    """A resource could not be opened at start-up (an unreachable broker past its connect timeout):
    one line and exit code 1, not a traceback."""


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where it is installed (not on every platform): a faster event loop, same behaviour."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def _serve(
    role: str,
    process: ProcessSettings,
    settings: S,
    start: Callable[[Service, S], Awaitable[None]],
    health_socket: socket.socket | None = None,
) -> None:
    # Signals first, before any resource is opened: a SIGTERM while start-up waits on an unreachable
    # broker stops the start (what is open is closed) instead of being ignored until it gives up.
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled.set)
    began = time.monotonic()
    started = asyncio.Event()

    async def life() -> list[str]:
        async with running(role, settings, start, process, health_socket) as service:
            started.set()
            log.info("started", startup_ms=round((time.monotonic() - began) * 1000, 1))
            return await service.watch(signalled)

    body = asyncio.create_task(life())
    early = asyncio.create_task(signalled.wait())
    await asyncio.wait({body, early}, return_when=asyncio.FIRST_COMPLETED)
    early.cancel()
    if not started.is_set() and not body.done():
        body.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await body
        log.info("stopped during start-up")
        return
    try:
        died = await body
    except (HealthPortError, StartupError):
        raise
    except Exception as error:
        if started.is_set():
            raise
        # A resource that cannot be opened (a missing database, a broker refusing us): one line.
        raise StartupError(f"could not start: {type(error).__name__}: {error}") from None
    if died:
        raise TaskDied(", ".join(died))
    log.info("stopped")


@contextlib.asynccontextmanager
async def health_server(
    service: Service, host: str, port: int | None, sock: socket.socket | None = None
) -> AsyncIterator[None]:
    """/metrics, /healthz (the process and its tasks live) and /readyz (ready for work), away from any
    vendor-facing listener, on `sock` if given (already listening), else on `port`; nothing when
    neither is."""
    if port is None and sock is None:
        yield
        return

    async def metrics(_: web.Request) -> web.Response:
        body = prometheus_client.generate_latest()
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "role": service.role})

    async def readyz(_: web.Request) -> web.Response:
        if service.ready:
            return web.json_response({"status": "ready", "role": service.role})
        return web.json_response({"status": "not ready", "role": service.role}, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    async with health_listener(app, host, port, sock):
        yield


@contextlib.asynccontextmanager
async def health_listener(
    app: web.Application, host: str, port: int | None, sock: socket.socket | None = None
) -> AsyncIterator[None]:
    """`app` served on `sock` (already listening) or on host:port, for as long as the block runs;
    HealthPortError, naming RESULTBUS_METRICS_PORT, when the port cannot be listened on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await (web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port)).start()
    except OSError as error:
        await runner.cleanup()
        # asyncio's message already repeats the address ("error while attempting to bind on address
        # (...): address already in use"): the system's own words for the errno say it once.
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise HealthPortError(
            f"RESULTBUS_METRICS_PORT={port}: cannot listen on {host}:{port}: {reason}"
        ) from None
    try:
        yield
    finally:
        await runner.cleanup()


def settings_help(groups: Sequence[Group]) -> str:
    """Every setting a role reads, from their declarations: the same whatever the environment holds."""
    seen: set[str] = set()
    sections: list[tuple[str, list[tuple[str, str, str]]]] = []
    for group in groups:
        rows = [(s.name, s.shown, s.help) for s in group.settings if s.name not in seen]
        seen.update(name for name, _, _ in rows)
        if rows:
            sections.append((group.title, rows))
    name_width = max(len(name) for _, rows in sections for name, _, _ in rows)
    # A long default (a URL) takes its own line rather than widening the column for every row.
    default_width = min(24, max(len(shown) for _, rows in sections for _, shown, _ in rows))
    lines = [f"settings (environment variables, with their defaults; {DURATION_SYNTAX}):"]
    for title, rows in sections:
        lines.append(f"{title}:")
        for name, shown, help in rows:
            if len(shown) > default_width:
                lines.append(f"  {name.ljust(name_width)}  {shown}")
                lines.append(f"  {'':{name_width}}  {'':{default_width}}  {help}")
            else:
                lines.append(f"  {name.ljust(name_width)}  {shown.ljust(default_width)}  {help}")
    return "\n".join(lines)
