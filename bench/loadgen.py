"""The load generator, in a process of its own: COUNT signed Inspera webhooks POSTed over
CONCURRENCY keep-alive connections, each request timed. Prints one JSON object (a `Load`).

`python -m bench.loadgen URL COUNT CONCURRENCY WARMUP`
"""

import asyncio
import statistics
import sys
import time

import aiohttp
import msgspec
import uvloop

from bench.payloads import inspera_request


class Load(msgspec.Struct):
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    started_at: float = 0.0  # unix time the timed requests began (the pipeline bench's clock)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


async def generate(url: str, count: int, concurrency: int, warmup: int) -> Load:
    requests = [inspera_request(i) for i in range(warmup + count)]
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(queue: list[tuple[bytes, dict[str, str]]], timed: bool) -> None:
            while queue:
                body, headers = queue.pop()
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                if timed:
                    latencies.append(time.perf_counter() - started)
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1

        warm = requests[:warmup]
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        todo = requests[warmup:]
        todo.reverse()
        started, started_at = time.perf_counter(), time.time()
        await asyncio.gather(*(worker(todo, True) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    ok = statuses.get("200", 0)
    return Load(ok, count - ok, seconds, cuts[49] * 1000, cuts[98] * 1000, statuses, started_at)


if __name__ == "__main__":
    url, count, concurrency, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    load = uvloop.run(generate(url, count, concurrency, warmup))
    sys.stdout.buffer.write(msgspec.json.encode(load) + b"\n")
