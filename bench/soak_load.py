"""The soak's load: every call sent once, at a steady rate (open loop: a slow answer does not delay
the next call), never retried. A 503 is counted, not retried: the soak measures what was promised
for the calls as sent."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import msgspec

from bench.soak_calls import Call

_ID = msgspec.json.Decoder(dict[str, str])


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    webhook_id: str | None  # from a 200's body
    error: str | None = None


@dataclass(frozen=True)
class Sent:
    answers: list[Answer]  # one per call, in call order
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds


async def send_steady(
    base_url: str, calls: Sequence[Call], rate: float, *, concurrency: int = 256, timeout: float = 30.0
) -> Sent:
    answers: list[Answer | None] = [None] * len(calls)
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(i: int, call: Call) -> None:
            try:
                async with session.post(
                    f"{base_url}/hooks/{call.source}", data=call.body, headers=call.headers
                ) as r:
                    text = await r.read()
                    webhook_id = _ID.decode(text).get("id") if r.status == 200 else None
                    answers[i] = Answer(r.status, webhook_id)
            except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as error:
                answers[i] = Answer(None, None, f"{type(error).__name__}: {error}"[:200])
            finally:
                limit.release()

        tasks = []
        started = time.perf_counter()
        for i, call in enumerate(calls):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await limit.acquire()
            tasks.append(asyncio.create_task(one(i, call)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return Sent([a if a is not None else Answer(None, None, "never sent") for a in answers], seconds)
