"""Loopback helpers shared by the benches: a free port, and waiting for a server to answer."""

import asyncio
import socket

import aiohttp

from bench.world import Process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ok(process: Process, url: str, timeout: float = 30.0) -> None:
    """Until `url` answers 200; raises BenchError if the process dies first."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            process.check_alive()
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
