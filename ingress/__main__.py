"""`python -m ingress`: the vendor-facing webhook server, until SIGTERM or SIGINT.

Shutdown order: readiness goes false first, then the listener stops accepting, in-flight requests
finish (each still waits for its broker confirm), and the broker connection closes last.

With RESULTBUS_INGRESS_PROCESSES above 1 (by default one per usable CPU: ingress/processes.py) this
process supervises that many ingress processes sharing the port (ingress/supervisor.py); each of
them is the process described here.
"""

import asyncio
import sys
from collections.abc import Mapping

import structlog
from aiohttp import web

from common.env import SettingError, process_env
from common.listener import GuardedSite
from common.service import Service, StartupError, parse_command_line, serve
from ingress.app import create_app, mark_draining
from ingress.errors import BrokerUnavailable
from ingress.middleware import report_malformed
from ingress.processes import PROCESSES, resolve
from ingress.publisher import Publisher
from ingress.settings import SETTINGS, IngressSettings
from ingress.sources import Source, SourceConfigError, load_sources

log = structlog.get_logger("ingress")

Loaded = tuple[IngressSettings, Mapping[str, Source]]


def read_settings(env: Mapping[str, str]) -> Loaded:
    settings = IngressSettings.from_env(env)
    try:
        return settings, load_sources(settings.sources_path, env)
    except SourceConfigError as error:
        raise SettingError(f"RESULTBUS_SOURCES: file {settings.sources_path}: {error}") from None


async def start_ingress(service: Service, loaded: Loaded, *, index: int | None = None) -> None:
    """`index`: this process's number among several sharing the port (None: the only one)."""
    settings, sources = loaded
    publisher = Publisher(settings.amqp_url, settings.topology, confirm_timeout=settings.confirm_timeout)
    try:
        await publisher.connect(retry_for=settings.connect_timeout)
    except BrokerUnavailable as error:
        raise StartupError(error.detail) from None
    service.on_close(publisher.close)
    service.ready_when(lambda: publisher.ready)
    app = create_app(settings, sources, publisher)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=service.process.shutdown_timeout)
    await runner.setup()
    # Closed once, here, at shutdown: the listener stops and the requests in flight finish (each
    # until its broker confirm), then the broker connection opened before it closes.
    service.on_close(runner.cleanup)
    site = GuardedSite(
        runner,
        settings.host,
        settings.port,
        name="ingress",
        limits=settings.connections,
        on_malformed=report_malformed,
        # Vendors send a handful of short headers; anything far beyond is refused by the parser.
        max_line_size=8190,
        max_field_size=8190,
        max_headers=64,
        reuse_port=index is not None,
    )
    await site.start()

    async def listen(stopping: asyncio.Event) -> None:
        await stopping.wait()
        mark_draining(app)  # unready at once; the listener closes with the resources

    service.run("http", listen)
    log.info(
        "ingress listening",
        **({} if index is None else {"process": index}),
        host=settings.host,
        port=settings.port,
        sources=sorted(sources),
        broker=settings.amqp_url_redacted,
        prefix=settings.topology.prefix,
        header_timeout_s=settings.connections.header_timeout,
        keepalive_timeout_s=settings.connections.keepalive_timeout,
        max_connections=settings.connections.max_connections,
    )


DESCRIPTION = (
    "The vendor-facing webhook server: POST /hooks/<source>, GET /healthz, GET /readyz. "
    "The sources file (RESULTBUS_SOURCES) names the environment variables that hold each source's "
    "secrets: see README.md, Sources. RESULTBUS_INGRESS_PROCESSES processes share the port: "
    "see docs/operations.md, Ingress processes."
)


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, *, prog: str | None = None
) -> int:
    env = process_env() if env is None else env
    parse_command_line("ingress", DESCRIPTION, [SETTINGS], argv, prog)
    try:
        processes = resolve(PROCESSES.read(env))
    except SettingError:
        processes = 1  # the single process's start says so, with every other setting's checks
    if processes > 1:
        from ingress.supervisor import supervise

        return supervise(processes, env)
    return serve(
        "ingress",
        description=DESCRIPTION,
        settings=[SETTINGS],
        read_settings=read_settings,
        start=start_ingress,
        argv=argv,
        env=env,
        prog=prog,
    )


if __name__ == "__main__":
    sys.exit(main())
