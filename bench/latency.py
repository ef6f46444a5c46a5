"""Latency through the pipeline, from the moment the sender has its 200 from the ingress:

- to the event on the results exchange (ingress + router; a probe queue bound to `#`, consumed in
  this process, each event stamped on arrival), at a steady rate;
- to a live subscriber receiving it (ingress + router + delivery), beside a subscriber that answers
  500 to everything and one that never answers, all three subscribed to every event.

The sender is open loop (bench/paced.py): a slow pipeline does not lower the offered rate. Clocks
are the same machine's unix time.
"""

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
import aiohttp
import msgspec
from aio_pika.abc import AbstractIncomingMessage

from bench import stack
from bench.delivery import Subscribers, _subscribe
from bench.net import free_port, wait_ok
from bench.paced import Paced
from bench.world import AMQP_URL, ROOT, BenchError, Process, world

SUBSCRIBER_P99_MS = 60.0  # issue 20
RESULTS_P99_MS = 50.0


@dataclass(frozen=True)
class LatencyResult:
    rate: float
    webhooks: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class _Event(msgspec.Struct):
    webhook_id: str


async def _paced(url: str, count: int, rate: float, timeout: float) -> Paced:
    args = [url, str(count), str(rate)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.paced", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"paced sender did not finish within {timeout}s") from None
    if proc.returncode != 0:
        raise BenchError(f"paced sender exited with {proc.returncode}")
    paced = msgspec.json.decode(out, type=Paced)
    if len(paced.answered) != count:
        raise BenchError(f"paced sender: {len(paced.answered)} of {count} answered 200 ({paced.statuses})")
    return paced


def _summary(rate: float, answered: list[tuple[str, float]], arrived: dict[str, float]) -> LatencyResult:
    ms = [(arrived[i] - t) * 1000 for i, t in answered]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return LatencyResult(rate, len(ms), cuts[49], cuts[98], max(ms))


async def to_results(count: int, rate: float, timeout: float) -> LatencyResult:
    arrived: dict[str, float] = {}
    decoder = msgspec.json.Decoder(_Event)

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrived.setdefault(decoder.decode(message.body).webhook_id, time.time())

    async with world() as w, stack.resultbus(w, ["router"]) as s:
        probe = await w.results_probe()
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1000)
            queue = await channel.get_queue(probe)
            await queue.consume(on_message, no_ack=True)
            paced = await _paced(s.url, count, rate, timeout)
            await _until(lambda: all(i in arrived for i, _ in paced.answered), timeout, "results")
            s.check_alive()
    return _summary(rate, paced.answered, arrived)


async def _until(done: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise BenchError(f"{what}: not everything arrived within {timeout}s") from None


async def to_subscriber(count: int, rate: float, timeout: float) -> LatencyResult:
    control, live, hang, fail = free_port(), free_port(), free_port(), free_port()
    args = ["bench.subscribers", str(control), str(live), "--hang", str(hang), "--fail", str(fail)]
    process = await Process.start("subscribers", [*args, "--by-webhook"], {})
    try:
        await wait_ok(process, f"http://127.0.0.1:{control}/count")
        subscribers = Subscribers(process, control, [live], hang)
        async with (
            world() as w,
            stack.resultbus(w, ["router", "delivery"]) as s,
            aiohttp.ClientSession() as http,
        ):
            urls = [f"http://127.0.0.1:{p}/hook" for p in (live, fail, hang)]
            await _subscribe(w, urls)
            paced = await _paced(s.url, count, rate, timeout)
            arrived = await subscribers.wait_for(http, count, timeout)
            s.check_alive()
    finally:
        await process.stop()
    return _summary(rate, paced.answered, arrived)
