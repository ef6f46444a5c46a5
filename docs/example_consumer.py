"""A downstream service's consumer of resultbus results, in a few lines.

    .venv/bin/python docs/example_consumer.py --bind 'itep.completed' --bind '*.released'

It binds a queue of its own to the results exchange with the routing keys it cares about, and handles
each event once: events carry a stable id (`message_id`), so a redelivery is recognised and skipped.
Needs only aio-pika and msgspec (or any JSON parser).

Which queue, and what is left behind when it stops:
- no `--queue`: a server-named exclusive queue, deleted with the connection. Nothing is left, and
  nothing is kept while the consumer is down: for trying things out.
- `--queue NAME`: a named quorum queue that outlives a restart, deleted by the broker once unused for
  `--expires` seconds (default one hour), so a forgotten experiment does not fill up for ever.
- `--queue NAME --durable`: no expiry. What a real service uses: events wait for it while it is down
  (and pile up if it never comes back: delete the queue when the service is retired).
"""

import argparse
import asyncio
import sys

import aio_pika
import msgspec

from schemas.event import ResultEvent  # or generate your own types from docs/event.schema.json

decoder = msgspec.json.Decoder(ResultEvent)


async def declare_queue(
    channel: aio_pika.abc.AbstractChannel, args: argparse.Namespace
) -> aio_pika.abc.AbstractQueue:
    if args.queue is None:
        return await channel.declare_queue(exclusive=True)
    arguments: dict[str, str | int] = {"x-queue-type": "quorum"}
    if not args.durable:
        arguments["x-expires"] = args.expires * 1000  # milliseconds unused before the broker deletes it
    return await channel.declare_queue(args.queue, durable=True, arguments=arguments)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--exchange", default="resultbus.results")
    parser.add_argument("--queue", default=None, help="a named queue (default: an exclusive one)")
    parser.add_argument(
        "--expires", type=int, default=3600, help="seconds unused before a named queue is deleted"
    )
    parser.add_argument("--durable", action="store_true", help="a named queue that never expires")
    parser.add_argument("--bind", action="append", default=None, help="routing key pattern; repeatable")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    args = parser.parse_args()
    if args.durable and args.queue is None:
        parser.error("--durable needs --queue NAME")

    connection = await aio_pika.connect_robust(args.url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(args.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await declare_queue(channel, args)
        for pattern in args.bind or ["#"]:
            await queue.bind(exchange, routing_key=pattern)
        print(f"consuming from {queue.name}", file=sys.stderr, flush=True)

        seen: set[str] = set()  # a real service keeps this in its own database
        handled = 0
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():  # acks when the block ends without an exception
                    if (message.routing_key or "").startswith("resultbus."):
                        continue  # resultbus's news about its own deliveries (`#` binds them too)
                    try:
                        event = decoder.decode(message.body)
                    except msgspec.DecodeError as error:  # another schema version, or not an event
                        print(f"{message.routing_key} skipped: {error}", file=sys.stderr, flush=True)
                        continue
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
