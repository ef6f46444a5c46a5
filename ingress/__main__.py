"""`python -m ingress`: the vendor-facing webhook server, until SIGTERM or SIGINT.

Shutdown order: readiness goes false first, then the listener stops accepting, in-flight requests
finish (each still waits for its broker confirm), and the broker connection closes last.
"""

import asyncio
import sys
from collections.abc import Mapping

import structlog
from aiohttp import web

from common.env import SettingError
from common.listener import GuardedSite
from common.service import Service, StartupError, serve
from ingress.app import create_app, mark_draining
from ingress.errors import BrokerUnavailable
from ingress.middleware import report_malformed
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


async def start_ingress(service: Service, loaded: Loaded) -> None:
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
    )
    await site.start()

    async def listen(stopping: asyncio.Event) -> None:
        await stopping.wait()
        mark_draining(app)  # unready at once; the listener closes with the resources

    service.run("http", listen)
    log.info(
        "ingress listening",
        host=settings.host,
        port=settings.port,
        sources=sorted(sources),
        broker=settings.amqp_url_redacted,
        prefix=settings.topology.prefix,
        header_timeout_s=settings.connections.header_timeout,
        keepalive_timeout_s=settings.connections.keepalive_timeout,
        max_connections=settings.connections.max_connections,
    )


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, *, prog: str | None = None
) -> int:
    return serve(
        "ingress",
        description="The vendor-facing webhook server: POST /hooks/<source>, GET /healthz, GET /readyz. "
        "The sources file (RESULTBUS_SOURCES) names the environment variables that hold each source's "
        "secrets: see README.md, Sources.",
        settings=[SETTINGS],
        read_settings=read_settings,
        start=start_ingress,
        argv=argv,
        env=env,
        prog=prog,
    )


if __name__ == "__main__":
    sys.exit(main())
