"""Operator commands: list what is dead-lettered or rejected, and replay it after a fix.

python -m workers inspect dead [--limit N]
python -m workers inspect rejected [--since ISO] [--source ID] [--limit N]
python -m workers replay dead [--limit N]
python -m workers replay rejected [--since ISO] [--source ID] [--id UUID ...]
"""

import argparse
from collections.abc import Mapping
from datetime import datetime

import aio_pika

from common.broker import declare_raw
from common.consumer import ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT, REASON, ROUTING_KEY
from common.db import connect
from common.settings import WorkerSettings


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for name, help_text in (
        ("inspect", "list dead-lettered or rejected webhooks"),
        ("replay", "replay them"),
    ):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("what", choices=["dead", "rejected", "delivery-dead"])
        parser.add_argument("--since", type=datetime.fromisoformat, help="rejected: received at or after")
        parser.add_argument("--source", help="rejected: only this source")
        parser.add_argument("--id", action="append", dest="ids", help="rejected: only this webhook id")
        parser.add_argument("--limit", type=int, default=None)


async def run(settings: WorkerSettings, args: argparse.Namespace) -> None:
    # Imported here: replay imports the router's metrics, which `python -m workers` must not register
    # in every role it starts (see Role in workers/__main__.py).
    from workers.replay import replay_dead_letters, replay_delivery_dead_letters, replay_rejected

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if args.command == "replay" and args.what == "dead":
            count = await replay_dead_letters(channel, settings.topology, limit=args.limit)
            print(f"replayed {count} dead-lettered messages")
        elif args.command == "replay" and args.what == "delivery-dead":
            count = await replay_delivery_dead_letters(channel, settings.topology, limit=args.limit)
            print(f"replayed {count} dead-lettered delivery messages")
        elif args.command == "replay":
            conn = await connect(settings)
            try:
                count = await replay_rejected(
                    conn, channel, settings.topology, since=args.since, source=args.source, ids=args.ids
                )
            finally:
                await conn.close()
            print(f"replayed {count} rejected webhooks")
        elif args.what == "dead":
            await declare_raw(channel, settings.topology)
            await _list_dead(channel, settings.topology.dead_queue, args.limit or 100)
        elif args.what == "delivery-dead":
            await _list_dead(channel, settings.topology.delivery_dead_queue, args.limit or 100)
        else:
            await _list_rejected(settings, args)


async def _list_dead(channel: aio_pika.abc.AbstractChannel, queue: str, limit: int) -> None:
    dead = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    print(f"{dead.declaration_result.message_count} messages in {queue}")
    # Taken without ack and left so: closing the channel puts every one of them back.
    for _ in range(limit):
        message = await dead.get(fail=False)
        if message is None:
            break
        headers = message.headers or {}
        reason = _header(headers, REASON) or _header(headers, "x-first-death-reason")
        print(
            f"{message.message_id} key={_header(headers, ROUTING_KEY)}"
            f" attempts={_header(headers, ATTEMPTS)}"
            f" first={_header(headers, FIRST_FAILED_AT)}"
            f" last={_header(headers, LAST_FAILED_AT)} reason={reason}"
        )


def _header(headers: Mapping[str, object], name: str) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


async def _list_rejected(settings: WorkerSettings, args: argparse.Namespace) -> None:
    conn = await connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT id, source, vendor, received_at, reason FROM raw_webhooks WHERE outcome = 'rejected'"
            " AND ($1::timestamptz IS NULL OR received_at >= $1) AND ($2::text IS NULL OR source = $2)"
            " ORDER BY received_at DESC LIMIT $3",
            args.since,
            args.source,
            args.limit or 100,
        )
    finally:
        await conn.close()
    for row in rows:
        print(
            f"{row['id']} {row['received_at'].isoformat()} {row['source']} ({row['vendor']}): {row['reason']}"
        )
