"""A downstream service's consumer of resultbus results, in a few lines.

    python docs/example_consumer.py --bind 'itep.completed' --bind '*.released' --queue my-service.results

It declares its own durable queue, binds it to the results exchange with the routing keys it cares
about, and handles each event once: events carry a stable id (`message_id`), so a redelivery is
recognised and skipped. Needs only aio-pika and msgspec (or any JSON parser).
"""

import argparse
import asyncio

import aio_pika
import msgspec

from schemas.event import ResultEvent  # or generate your own types from docs/event.schema.json

decoder = msgspec.json.Decoder(ResultEvent)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--exchange", default="resultbus.results")
    parser.add_argument("--queue", default="example-consumer.results")
    parser.add_argument("--bind", action="append", default=None, help="routing key pattern; repeatable")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    args = parser.parse_args()

    connection = await aio_pika.connect_robust(args.url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(args.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
        for pattern in args.bind or ["#"]:
            await queue.bind(exchange, routing_key=pattern)

        seen: set[str] = set()  # a real service keeps this in its own database
        handled = 0
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():  # acks when the block ends without an exception
                    event = decoder.decode(message.body)
                    if event.id in seen:
                        continue
                    seen.add(event.id)
                    exam = event.exam.key if event.exam else "-"
                    print(f"{message.routing_key} {event.id} exam={exam} status={event.status}", flush=True)
                    handled += 1
                if args.count and handled >= args.count:
                    break


if __name__ == "__main__":
    asyncio.run(main())
