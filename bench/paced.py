"""An open-loop sender, in a process of its own: COUNT signed Inspera webhooks POSTed at RATE per
second whatever the answers take (a slow server does not slow the offered load), each 200 stamped
with the unix time it arrived and the webhook id the ingress answered. Prints one JSON `Paced`.

`python -m bench.paced URL COUNT RATE`
"""

import asyncio
import sys
import time

import aiohttp
import msgspec
import uvloop

from bench.payloads import inspera_request


class Answered(msgspec.Struct):
    id: str


class Paced(msgspec.Struct):
    answered: list[tuple[str, float]]  # (webhook id, unix time of the 200)
    statuses: dict[str, int]


async def send(url: str, count: int, rate: float) -> Paced:
    requests = [inspera_request(i) for i in range(count)]
    answered: list[tuple[str, float]] = []
    statuses: dict[str, int] = {}
    decoder = msgspec.json.Decoder(Answered)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=timeout) as session:

        async def one(body: bytes, headers: dict[str, str]) -> None:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    data = await response.read()
                    stamp = time.time()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                answered.append((decoder.decode(data).id, stamp))

        started, tasks = time.perf_counter(), []
        for n, (body, headers) in enumerate(requests):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(body, headers)))
        await asyncio.gather(*tasks)
    return Paced(answered, statuses)


if __name__ == "__main__":
    url, count, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sys.stdout.buffer.write(msgspec.json.encode(uvloop.run(send(url, count, rate))) + b"\n")
