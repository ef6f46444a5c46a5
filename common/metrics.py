"""Prometheus metrics: every process serves `/metrics` on its own port when RESULTBUS_METRICS_PORT is
set, away from the vendor-facing listener. The metrics themselves live beside the code they count."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import prometheus_client
from aiohttp import web


async def _metrics(_: web.Request) -> web.Response:
    body = prometheus_client.generate_latest()
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


@asynccontextmanager
async def metrics_server(host: str, port: int | None) -> AsyncIterator[None]:
    """Serves /metrics for as long as the block runs; does nothing when `port` is None."""
    if port is None:
        yield
        return
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()
