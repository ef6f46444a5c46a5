"""Operator commands: list what is dead-lettered or rejected, and replay it after a fix; every queue's
depth.

resultbus inspect queues
resultbus inspect dead [--limit N]
resultbus inspect rejected [--since DATE|TIME] [--source ID] [--test-id|--external-id|--exam-key|--email X] [--limit N]
resultbus inspect delivery-dead [--limit N]
resultbus replay dead [--limit N]
resultbus replay rejected [--since DATE|TIME] [--source ID] [--test-id|… X] [--id UUID ...]
resultbus replay delivery-dead [--limit N]

Every listing says how many there are and how many it showed; a replay shows its progress on stderr.
"""

import argparse
from collections.abc import Mapping
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractConnection

from common import inventory
from common.amqp import connect_robust
from common.broker import declare_raw
from common.consumer import ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT, REASON, ROUTING_KEY
from common.db import connect
from common.env import process_env
from common.inventory import management_unacked, passive_depths
from common.progress import Progress, Reporter
from common.rejected import NEWEST_FIRST, Kind, RejectedFilter, search_keys, where
from common.replay import replay_dead_letters, replay_delivery_dead_letters, replay_rejected
from common.settings import WorkerSettings
from common.times import parse_time

DEFAULT_LIMIT = 100
# What a rejected body can name (common/rejected.py), as options.
NAMED: dict[str, Kind] = {
    "test-id": "test_id",
    "external-id": "external_id",
    "exam-key": "key",
    "email": "email",
}


def _named(args: argparse.Namespace) -> list[str]:
    return search_keys({kind: getattr(args, option.replace("-", "_")) for option, kind in NAMED.items()})


def parse_since(text: str) -> datetime:
    """An ISO date (`2026-11-22`: from its midnight, UTC) or date and time; no zone means UTC."""
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for name, help_text in (
        (
            "inspect",
            "list dead-lettered or rejected webhooks (how many, and the newest first), or every queue's"
            " depth and consumers (inspect queues)",
        ),
        ("replay", "send them through again, after a fix"),
    ):
        parser = sub.add_parser(name, help=help_text, description=help_text)
        choices = ["dead", "rejected", "delivery-dead"] + (["queues"] if name == "inspect" else [])
        parser.add_argument("what", choices=choices)
        parser.add_argument(
            "--since", type=parse_since, help="rejected: received at or after (a date, or date and time)"
        )
        parser.add_argument("--source", help="rejected: only this source")
        for option, kind in NAMED.items():
            parser.add_argument(
                f"--{option}", metavar="VALUE", help=f"rejected: only those whose body names this {kind}"
            )
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
                    replayed = await replay_rejected(
                        conn,
                        channel,
                        settings.topology,
                        since=args.since,
                        source=args.source,
                        ids=args.ids,
                        keys=_named(args),
                        progress=progress,
                    )
                finally:
                    await conn.close()
                count, what = len(replayed), "rejected webhooks"
            progress.finish()
            print(f"replayed {count} {what}")
        elif args.what == "dead":
            await declare_raw(channel, settings.topology)
            await _list_dead(channel, settings.topology.dead_queue, args.limit or DEFAULT_LIMIT)
        elif args.what == "delivery-dead":
            await _list_dead(channel, settings.topology.delivery_dead_queue, args.limit or DEFAULT_LIMIT)
        elif args.what == "queues":
            await list_queues(connection, settings, process_env())
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


async def _list_rejected(settings: WorkerSettings, args: argparse.Namespace) -> None:
    limit = args.limit or DEFAULT_LIMIT
    chosen = RejectedFilter(since=args.since, source=args.source, keys=_named(args))
    params: list[object] = []
    condition = where(chosen, params)
    conn = await connect(settings)
    try:
        total = await conn.fetchval(f"SELECT count(*) FROM raw_webhooks WHERE {condition}", *params)
        rows = await conn.fetch(
            f"SELECT id, source, vendor, received_at, reason FROM raw_webhooks WHERE {condition}"
            f" {NEWEST_FIRST} LIMIT ${len(params) + 1}",
            *params,
            limit,
        )
    finally:
        await conn.close()
    filters = [
        f"since {args.since.isoformat()}" if args.since else "",
        f"from {args.source}" if args.source else "",
        *(f"naming {key.replace(':', ' ', 1)}" for key in chosen.keys),
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


async def list_queues(
    connection: AbstractConnection, settings: WorkerSettings, env: Mapping[str, str]
) -> None:
    """Every queue of the prefix: messages ready and consumers by passive declares (nothing is
    created; no management plugin needed), unacked messages from the management API when
    RESULTBUS_RABBITMQ_API names it."""
    depths = await passive_depths(connection, inventory.queues_of(settings.topology, env))
    unacked, note = await management_unacked(env.get("RESULTBUS_RABBITMQ_API", ""), settings.amqp_url)
    rows = [
        (
            d.queue.group,
            d.queue.name,
            "not declared" if d.messages is None else f"{d.messages:,}",
            "—" if d.messages is None or d.queue.name not in unacked else f"{unacked[d.queue.name]:,}",
            "—" if d.consumers is None else f"{d.consumers:,}",
        )
        for d in depths
    ]
    header = ("kind", "queue", "ready", "unacked", "consumers")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(
                v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    declared = [d for d in depths if d.messages is not None]
    print(
        f"{len(declared)} of {len(depths)} queues of prefix {settings.topology.prefix!r} declared,"
        f" {sum(d.messages or 0 for d in declared):,} messages ready; {note}"
    )
