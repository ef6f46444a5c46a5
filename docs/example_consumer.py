"""A downstream service's consumer of resultbus results, in a few lines.

    .venv/bin/python docs/example_consumer.py --bind 'itep.completed' --bind '*.released'

It binds a queue of its own to the results exchange with the routing keys it cares about, and handles
each event once: events carry a stable id (`message_id`), so a redelivery is recognised and skipped.
Standalone: it needs only aio-pika and msgspec, and declares the few fields it reads itself (generate
all of them from docs/event.schema.json if you need more). It reads the broker and the exchange from
the settings resultbus reads (RESULTBUS_AMQP_URL, RESULTBUS_AMQP_PREFIX), or from --url and --exchange.

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
import os
import sys

import aio_pika
import msgspec

SCHEMA = "resultbus.result-event/v1"  # a v2 event may change a field's meaning: not read as v1


class Exam(msgspec.Struct):
    key: str
    version: int | None = None  # grows with every event that moved the exam (docs/consumers.md)
    state: str | None = None  # where the exam stands after this event


class Event(msgspec.Struct):
    """The fields this consumer uses; the others are ignored (msgspec skips unknown fields)."""

    schema: str
    id: str
    type: str
    vendor: str
    status: str | None = None
    exam: Exam | None = None


decoder = msgspec.json.Decoder(Event)


def show(routing_key: str, event: Event, versions: dict[tuple[str, str], int]) -> None:
    """Prints the event, or drops it as stale with one comparison: its exam has moved on since."""
    if event.exam is None or event.exam.version is None:
        exam = event.exam.key if event.exam else "-"
        print(f"{routing_key} {event.id} exam={exam} status={event.status}", flush=True)
        return
    key, version = (event.vendor, event.exam.key), event.exam.version
    if version < versions.get(key, 0):
        print(
            f"{routing_key} {event.id} stale: exam {event.exam.key} is at version {versions[key]},"
            f" this event at {version}",
            file=sys.stderr,
            flush=True,
        )
        return
    versions[key] = version
    print(
        f"{routing_key} {event.id} exam={event.exam.key} version={version} state={event.exam.state}"
        f" status={event.status}",
        flush=True,
    )


def redacted(url: str) -> str:
    """The URL without its password, for what is printed."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if at and ":" in credentials else url


async def declare_queue(
    channel: aio_pika.abc.AbstractChannel, args: argparse.Namespace
) -> aio_pika.abc.AbstractQueue:
    if args.queue is None:
        return await channel.declare_queue(exclusive=True)
    arguments: dict[str, str | int] = {"x-queue-type": "quorum"}
    if not args.durable:
        arguments["x-expires"] = args.expires * 1000  # milliseconds unused before the broker deletes it
    return await channel.declare_queue(args.queue, durable=True, arguments=arguments)


async def results_exchange(
    connection: aio_pika.abc.AbstractConnection, channel: aio_pika.abc.AbstractChannel, name: str
) -> aio_pika.abc.AbstractExchange:
    """The exchange, declared as resultbus declares it; said so when it did not exist yet (nothing
    was ever published there: resultbus not started yet, or another RESULTBUS_AMQP_PREFIX)."""
    probe = await connection.channel()
    try:
        await probe.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        print(
            f"exchange {name} did not exist: nothing has published there yet (is resultbus running with"
            " this RESULTBUS_AMQP_PREFIX?); declared it, so that events wait in the queue once it does",
            file=sys.stderr,
            flush=True,
        )
    else:
        await probe.close()
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def main() -> None:
    prefix = os.environ.get("RESULTBUS_AMQP_PREFIX") or "resultbus"
    # resultbus takes several comma-separated addresses (a cluster's nodes): the first is enough here.
    url = (os.environ.get("RESULTBUS_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/").split(",")[0].strip()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=url, help="the broker (default: RESULTBUS_AMQP_URL's first address)")
    parser.add_argument(
        "--exchange", default=f"{prefix}.results", help="default: <RESULTBUS_AMQP_PREFIX>.results"
    )
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
        exchange = await results_exchange(connection, channel, args.exchange)
        queue = await declare_queue(channel, args)
        patterns = args.bind or ["#"]
        for pattern in patterns:
            await queue.bind(exchange, routing_key=pattern)
        print(
            f"consuming from {queue.name}, bound to {exchange.name} on {redacted(args.url)} with"
            f" {', '.join(patterns)}; waiting for events (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )

        # A real service keeps these in its own database.
        seen: set[str] = set()
        versions: dict[tuple[str, str], int] = {}  # (vendor, exam key) -> the version applied
        handled = 0
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():  # acks when the block ends without an exception
                    if (message.routing_key or "").startswith("resultbus."):
                        continue  # resultbus's news about its own deliveries (`#` binds them too)
                    try:
                        event = decoder.decode(message.body)
                    except msgspec.DecodeError as error:  # not an event
                        print(f"{message.routing_key} skipped: {error}", file=sys.stderr, flush=True)
                        continue
                    if event.schema != SCHEMA:
                        print(
                            f"{message.routing_key} skipped: schema {event.schema}",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                    if event.id in seen:
                        continue
                    seen.add(event.id)
                    handled += 1
                    show(message.routing_key or "", event, versions)
                if args.count and handled >= args.count:
                    break


if __name__ == "__main__":
    asyncio.run(main())
