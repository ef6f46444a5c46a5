"""Delivery workers as real processes (python -m workers delivery) with the tests' fast schedule."""

import asyncio
import os
import signal
import sys

import aiohttp

from schemas.topology import Topology
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.services import AMQP_URL, DATABASE_URL


async def delivery_process(topology: Topology, schema: str, **settings: str) -> asyncio.subprocess.Process:
    """A delivery worker with the tests' fast schedule (and `settings`), once it is ready."""
    metrics = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_URL=AMQP_URL,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
        RESULTBUS_METRICS_PORT=str(metrics),
        RESULTBUS_DELIVERY_SCHEDULE="0,200ms,400ms",
        RESULTBUS_DELIVERY_JITTER="0",
        RESULTBUS_DELIVERY_PARK="50ms",
        RESULTBUS_DELIVERY_TIMEOUT="5s",
        RESULTBUS_ALLOW_PRIVATE_ENDPOINTS="1",
        RESULTBUS_LOG_LEVEL="warning",
        **settings,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "delivery", env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the delivery worker exited"
            try:
                async with http.get(f"http://127.0.0.1:{metrics}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    if process.returncode is None:
        process.send_signal(sig)
    async with asyncio.timeout(20):
        return await process.wait()
