"""Operator commands: list what is dead-lettered or rejected, and replay it after a fix.

resultbus inspect dead [--limit N]
resultbus inspect rejected [--since DATE|TIME] [--source ID] [--limit N]
resultbus inspect delivery-dead [--limit N]
resultbus replay dead [--limit N]
resultbus replay rejected [--since DATE|TIME] [--source ID] [--id UUID ...]
resultbus replay delivery-dead [--limit N]

Every listing says how many there are and how many it showed; a replay shows its progress on stderr.
"""

import argparse
from collections.abc import Mapping
from datetime import datetime

import aio_pika

from common.amqp import connect_robust
from common.broker import declare_raw
from common.consumer import ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT, REASON, ROUTING_KEY
from common.db import connect
from common.progress import Progress, Reporter
from common.replay import replay_dead_letters, replay_delivery_dead_letters, replay_rejected
from common.settings import WorkerSettings
from common.times import parse_time

DEFAULT_LIMIT = 100


def parse_since(text: str) -> datetime:
    """An ISO date (`2026-11-22`: from its midnight, UTC) or date and time; no zone means UTC."""
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for name, help_text in (
        ("inspect", "list dead-lettered or rejected webhooks (how many, and the newest first)"),
        ("replay", "send them through again, after a fix"),
    ):
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("what", choices=["dead", "rejected", "delivery-dead"])
        parser.add_argument(
            "--since", type=parse_since, help="rejected: received at or after (a date, or date and time)"
        )
        parser.add_argument("--source", help="rejected: only this source")
        parser.add_argument("--id", action="append", dest="ids", help="rejected: only this webhook id")
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=f"at most this many (inspect: default {DEFAULT_LIMIT}; replay: default all)",
        )


class _Progress:
    """Creates the reporter once the command knows its total, and closes it at the end."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.reporter: Reporter | None = None

    def __call__(self, total: int) -> Progress:
        self.reporter = Reporter(self.label, total)
        return self.reporter

    def finish(self) -> None:
        if self.reporter is not None:
            self.reporter.finish()


async def run(settings: WorkerSettings, args: argparse.Namespace) -> None:

    connection = await connect_robust(settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if args.command == "replay":
            progress = _Progress(f"replay {args.what}")
            if args.what == "dead":
                count = await replay_dead_letters(
                    channel, settings.topology, limit=args.limit, progress=progress
                )
                what = "dead-lettered messages"
            elif args.what == "delivery-dead":
                count = await replay_delivery_dead_letters(
                    channel, settings.topology, limit=args.limit, progress=progress
                )
                what = "dead-lettered delivery messages"
            else:
                conn = await connect(settings)
                try:
                    count = await replay_rejected(
                        conn,
                        channel,
                        settings.topology,
                        since=args.since,
                        source=args.source,
                        ids=args.ids,
                        progress=progress,
                    )
                finally:
                    await conn.close()
                what = "rejected webhooks"
            progress.finish()
            print(f"replayed {count} {what}")
        elif args.what == "dead":
            await declare_raw(channel, settings.topology)
            await _list_dead(channel, settings.topology.dead_queue, args.limit or DEFAULT_LIMIT)
        elif args.what == "delivery-dead":
            await _list_dead(channel, settings.topology.delivery_dead_queue, args.limit or DEFAULT_LIMIT)
        else:
            await _list_rejected(settings, args)


async def _list_dead(channel: aio_pika.abc.AbstractChannel, queue: str, limit: int) -> None:
    dead = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    total = dead.declaration_result.message_count or 0
    print(f"{total} messages in {queue}")
    # Taken without ack and left so: closing the channel puts every one of them back.
    shown = 0
    for _ in range(limit):
        message = await dead.get(fail=False)
        if message is None:
            break
        shown += 1
        headers = message.headers or {}
        reason = _header(headers, REASON) or _header(headers, "x-first-death-reason")
        print(
            f"{message.message_id} key={_header(headers, ROUTING_KEY)}"
            f" attempts={_header(headers, ATTEMPTS)}"
            f" first={_header(headers, FIRST_FAILED_AT)}"
            f" last={_header(headers, LAST_FAILED_AT)} reason={reason}"
        )
    if shown < total:
        print(f"{shown} of {total} shown (the oldest first; --limit N for more)")


def _header(headers: Mapping[str, object], name: str) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


_REJECTED_WHERE = (
    " FROM raw_webhooks WHERE outcome = 'rejected'"
    " AND ($1::timestamptz IS NULL OR received_at >= $1) AND ($2::text IS NULL OR source = $2)"
)


async def _list_rejected(settings: WorkerSettings, args: argparse.Namespace) -> None:
    limit = args.limit or DEFAULT_LIMIT
    conn = await connect(settings)
    try:
        total = await conn.fetchval("SELECT count(*)" + _REJECTED_WHERE, args.since, args.source)
        rows = await conn.fetch(
            "SELECT id, source, vendor, received_at, reason" + _REJECTED_WHERE
            + " ORDER BY received_at DESC LIMIT $3",
            args.since,
            args.source,
            limit,
        )  # fmt: skip
    finally:
        await conn.close()
    filters = [
        f"since {args.since.isoformat()}" if args.since else "",
        f"from {args.source}" if args.source else "",
    ]
    scope = " ".join(f for f in filters if f)
    noun = "rejected webhooks" + (f" ({scope})" if scope else "")
    print(f"{total} {noun}" + ("" if total else ": nothing to replay"))
    for row in rows:
        print(
            f"{row['id']} {row['received_at'].isoformat()} {row['source']} ({row['vendor']}): {row['reason']}"
        )
    if len(rows) < total:
        print(f"{len(rows)} of {total} shown (the newest first; --limit N for more)")
