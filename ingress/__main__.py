"""`python -m ingress`: serve webhooks until SIGTERM or SIGINT, then shut down in order.

Shutdown order: readiness goes false first, then the listener stops accepting, in-flight requests
finish (each still waits for its broker confirm), and the broker connection closes last.
"""

import asyncio
import sys
from collections.abc import Mapping

import structlog
from aiohttp import web

from common.env import SettingError, process_env
from common.logs import configure_logging
from common.metrics import metrics_server
from common.process import stop_on_signals
from ingress.app import create_app, mark_draining
from ingress.errors import BrokerUnavailable
from ingress.publisher import Publisher
from ingress.settings import IngressSettings
from ingress.sources import Source, SourceConfigError, load_sources

log = structlog.get_logger("ingress")


async def serve(settings: IngressSettings, sources: Mapping[str, Source]) -> None:
    publisher = Publisher(settings.amqp_url, settings.topology, confirm_timeout=settings.confirm_timeout)
    await publisher.connect(retry_for=settings.connect_timeout)
    try:
        app = create_app(settings, sources, publisher)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout,
            # Vendors send a handful of short headers; anything far beyond is refused by the parser.
            max_line_size=8190,
            max_field_size=8190,
            max_headers=64,
        )
        await runner.setup()
        stop = stop_on_signals()
        try:
            async with metrics_server(settings.host, settings.metrics_port):
                await web.TCPSite(runner, settings.host, settings.port).start()
                log.info(
                    "ingress listening",
                    host=settings.host,
                    port=settings.port,
                    sources=sorted(sources),
                    broker=settings.amqp_url_redacted,
                    prefix=settings.topology.prefix,
                    metrics_port=settings.metrics_port,
                )
                await stop.wait()
                log.info("shutting down")
                mark_draining(app)
        finally:
            # Stops the listener, waits up to shutdown_timeout for in-flight requests, then closes.
            await runner.cleanup()
    finally:
        await publisher.close()
    log.info("stopped")


def main(env: Mapping[str, str] | None = None) -> int:
    env = process_env() if env is None else env
    try:
        settings = IngressSettings.from_env(env)
    except SettingError as exc:
        print(f"ingress: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        sources = load_sources(settings.sources_path, env)
    except SourceConfigError as exc:
        print(f"ingress: bad sources file {settings.sources_path}: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(settings, sources))
    except BrokerUnavailable as exc:
        print(f"ingress: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
