"""The router's baseline: a bare aio-pika consume-and-ack loop, nothing else.

`python -m bench.consumer QUEUE COUNT PREFETCH`: acks COUNT messages one by one, then cancels its
consumer (which is what the parent watches for) and exits.
"""

import asyncio
import contextlib
import sys

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.world import AMQP_URL


async def consume(queue_name: str, count: int, prefetch: int) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name, ensure=True)
        done = asyncio.Event()
        acked = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked
            await message.ack()
            acked += 1
            if acked >= count:
                done.set()

        tag = await queue.consume(on_message)
        await done.wait()
        await queue.cancel(tag)


def main() -> None:
    queue_name, count, prefetch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(consume(queue_name, count, prefetch))


if __name__ == "__main__":
    main()
