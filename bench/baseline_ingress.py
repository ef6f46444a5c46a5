"""The ingress's baseline: a bare aiohttp handler that publishes the body with a publisher confirm
and answers 200. Nothing else: no source lookup, no authentication, no envelope, no logging.

`python -m bench.baseline_ingress PORT [PROCESSES]` (broker prefix from RESULTBUS_AMQP_PREFIX).
With PROCESSES above 1, that many copies share the port with SO_REUSEPORT, as the ingress's do
(forked before any event loop or connection exists; SIGTERM to the first stops them all): the
baseline for the ingress with as many processes.
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


async def serve(port: int, reuse_port: bool = False) -> None:
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
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    await connection.close()


def main(port: int, processes: int) -> None:
    if processes == 1:
        uvloop.run(serve(port))
        return
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            uvloop.run(serve(port, reuse_port=True))
            os._exit(0)
        children.append(pid)
    try:
        uvloop.run(serve(port, reuse_port=True))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
