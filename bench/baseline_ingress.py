"""The ingress's baseline: a bare aiohttp handler that publishes the body with a publisher confirm
and answers 200. Nothing else: no source lookup, no authentication, no envelope, no logging.

`python -m bench.baseline_ingress PORT` (broker prefix from RESULTBUS_AMQP_PREFIX).
"""

import asyncio
import os
import signal
import sys

import aio_pika
import uvloop
from aiohttp import web

from bench.world import AMQP_URL
from common.broker import declare_raw
from schemas.topology import Topology


async def serve(port: int) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    exchange, _ = await declare_raw(channel, Topology(os.environ["RESULTBUS_AMQP_PREFIX"]))

    async def hook(request: web.Request) -> web.Response:
        message = aio_pika.Message(await request.read(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key="bench")
        return web.Response(body=b"{}", content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/hooks/{source}", hook)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    await connection.close()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
