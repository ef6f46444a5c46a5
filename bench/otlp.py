"""A stand-in OTLP/HTTP collector for the tracing row: it takes what the SDK exports and counts it,
without decoding (a real collector runs elsewhere; its CPU is not the ingress's cost)."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from bench.net import free_port


@dataclass
class Collector:
    endpoint: str
    exports: int = 0
    bytes: int = 0


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[Collector]:
    port = free_port()
    running = Collector(f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        running.exports += 1
        running.bytes += len(await request.read())
        # An empty ExportTraceServiceResponse is zero bytes of protobuf: everything accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield running
    finally:
        await runner.cleanup()
