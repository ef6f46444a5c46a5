"""The delivery bench's baseline: a bare aiohttp client loop that signs each body the way the
delivery worker does (Standard Webhooks headers) and POSTs it to each live subscriber, with the
worker's per-endpoint concurrency. No broker, no database, no retries.

`python -m bench.delivery_baseline JOB_FILE`: the job is a JSON `Job`; prints one JSON `Posted`.
"""

import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import uvloop

from subscribers.signing import secret_key, webhook_headers


class Target(msgspec.Struct, frozen=True):
    url: str
    secret: str


class Job(msgspec.Struct, frozen=True):
    targets: list[Target]
    events: list[tuple[str, bytes]]  # (event id, body)
    per_endpoint: int


class Posted(msgspec.Struct, frozen=True):
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float


async def post_all(job: Job) -> Posted:
    latencies: list[float] = []
    failed = 0
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(target: Target, todo: list[tuple[str, bytes]]) -> None:
            nonlocal failed
            keys = [secret_key(target.secret)]
            while todo:
                event_id, body = todo.pop()
                headers = webhook_headers(keys, event_id, int(time.time()), body)
                headers["Content-Type"] = "application/json"
                started = time.perf_counter()
                async with session.post(target.url, data=body, headers=headers, allow_redirects=False) as r:
                    await r.content.read(4096)
                    ok = 200 <= r.status < 300
                latencies.append(time.perf_counter() - started)
                failed += not ok

        started = time.perf_counter()
        queues = [(t, list(reversed(job.events))) for t in job.targets]
        await asyncio.gather(*(worker(t, q) for t, q in queues for _ in range(job.per_endpoint)))
        seconds = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Posted(len(latencies) - failed, failed, seconds, cuts[49] * 1000, cuts[98] * 1000)


if __name__ == "__main__":
    job = msgspec.json.decode(Path(sys.argv[1]).read_bytes(), type=Job)
    sys.stdout.buffer.write(msgspec.json.encode(uvloop.run(post_all(job))) + b"\n")
