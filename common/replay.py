"""Replay, for operators after a fix: dead-lettered messages and rejected webhooks go back through the
raw queue. Idempotent: a webhook already stored is not stored again, and its events are deduplicated.

Here in common/ (not workers/) because both the operator CLI and the admin console replay."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from common.broker import declare_raw, republished
from common.consumer import ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT, QUEUE, REPLAYED, ROUTING_KEY
from common.db import DbConn
from common.progress import Progress, no_progress
from common.rejected import RejectedFilter, where
from schemas.envelope import ENVELOPE_CONTENT_TYPE, RawEnvelope, encode_envelope
from schemas.topology import Topology, raw_routing_key
from schemas.vendor import Vendor

log = structlog.get_logger("replay")

_RETRY_HEADERS = (ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT)


async def replay_dead_letters(
    channel: AbstractChannel,
    topology: Topology,
    *,
    limit: int | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> int:
    """Moves what is in the raw dead-letter queue now back to the raw exchange; returns how many.

    `channel` must have publisher confirms: each message leaves the dead-letter queue only after the
    broker confirmed its copy."""
    exchange, _ = await declare_raw(channel, topology)

    def back_to_raw(message: AbstractIncomingMessage) -> tuple[AbstractExchange, str, dict[str, Any]]:
        headers = {k: v for k, v in (message.headers or {}).items() if k not in _RETRY_HEADERS}
        # The router then publishes the events it may have stored the first time round.
        headers[REPLAYED] = datetime.now(UTC).isoformat()
        return exchange, str(headers.get(ROUTING_KEY) or "replay"), headers

    return await _move_dead(channel, topology.dead_queue, back_to_raw, limit, progress)


async def replay_delivery_dead_letters(
    channel: AbstractChannel,
    topology: Topology,
    *,
    limit: int | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> int:
    """Moves delivery work (events to fan out, attempts to make) back to the queue it died in."""
    await channel.declare_queue(
        topology.delivery_dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    queues = {topology.deliveries_queue, topology.delivery_attempts_queue}

    def back_to_its_queue(message: AbstractIncomingMessage) -> tuple[AbstractExchange, str, dict[str, Any]]:
        headers = dict(message.headers or {})
        died_in = headers.get(QUEUE) or headers.get("x-first-death-queue")
        queue = died_in.decode() if isinstance(died_in, bytes) else str(died_in)
        if queue not in queues:
            raise ValueError(f"dead delivery message from an unknown queue {queue!r}")
        return channel.default_exchange, queue, headers

    return await _move_dead(channel, topology.delivery_dead_queue, back_to_its_queue, limit, progress)


Target = Callable[[AbstractIncomingMessage], tuple[AbstractExchange, str, dict[str, Any]]]


async def _move_dead(
    channel: AbstractChannel,
    dead_queue: str,
    target: Target,
    limit: int | None,
    progress: Callable[[int], Progress] | None,
) -> int:
    dead = await channel.declare_queue(dead_queue, passive=True)
    # Only what is there now: a message that fails again must not be replayed in a loop.
    waiting = dead.declaration_result.message_count or 0
    count = min(waiting, limit) if limit is not None else waiting
    report = progress(count) if progress is not None else no_progress
    moved = 0
    for _ in range(count):
        message = await dead.get(fail=False)
        if message is None:
            break
        exchange, routing_key, headers = target(message)
        await exchange.publish(republished(message.body, message, headers), routing_key=routing_key)
        await message.ack()
        moved += 1
        report(moved)
    log.info("dead letters replayed", queue=dead_queue, count=moved)
    return moved


_REJECTED = """
SELECT id::text, source, vendor, received_at, content_type, body, vendor_event, remote
FROM raw_webhooks WHERE {where}
ORDER BY received_at, id
{limit}
"""


def _chosen(
    since: datetime | None,
    until: datetime | None,
    source: str | None,
    ids: list[str] | None,
    keys: list[str] | None,
    vendors: list[str] | None,
) -> RejectedFilter:
    # A purged body has nothing to replay.
    return RejectedFilter(
        since=since, until=until, source=source, vendors=vendors, ids=ids, keys=keys or [], replayable=True
    )


async def count_rejected(
    conn: DbConn,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    ids: list[str] | None = None,
    keys: list[str] | None = None,
    vendors: list[str] | None = None,
) -> int:
    """How many rejected webhooks a replay with the same filters would send (before its limit)."""
    params: list[object] = []
    condition = where(_chosen(since, until, source, ids, keys, vendors), params)
    return int(await conn.fetchval(f"SELECT count(*) FROM raw_webhooks WHERE {condition}", *params))


async def replay_rejected(
    conn: DbConn,
    channel: AbstractChannel,
    topology: Topology,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    ids: list[str] | None = None,
    keys: list[str] | None = None,
    vendors: list[str] | None = None,
    limit: int | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> list[str]:
    """Sends rejected webhooks through the router again, under their original ids: one that now
    decodes turns from rejected to accepted; one that still fails stays rejected with the new reason.
    `keys`: only those whose bodies name all of them (common.rejected.search_key). Returns the ids of
    the webhooks sent again (oldest first), so that a caller can follow their new outcomes."""
    exchange, _ = await declare_raw(channel, topology)
    params: list[object] = []
    condition = where(_chosen(since, until, source, ids, keys, vendors), params)
    if limit is not None:
        params.append(limit)
    rows = await conn.fetch(
        _REJECTED.format(where=condition, limit=f"LIMIT ${len(params)}" if limit is not None else ""), *params
    )
    report = progress(len(rows)) if progress is not None else no_progress
    for done, row in enumerate(rows, 1):
        if row["vendor"] in Vendor._value2member_map_:
            vendor = Vendor(row["vendor"])
            body = encode_envelope(
                RawEnvelope(
                    id=row["id"],
                    source=row["source"],
                    vendor=vendor,
                    received_at=row["received_at"],
                    content_type=row["content_type"],
                    body=bytes(row["body"]),
                    event=row["vendor_event"],
                    remote=row["remote"],
                )
            )
            routing_key = raw_routing_key(vendor, row["source"])
        else:
            # Not an envelope at all when it arrived: send back exactly what was received.
            body, routing_key = bytes(row["body"]), row["source"]
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=row["id"],
                content_type=ENVELOPE_CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
        )
        report(done)
    log.info("rejected webhooks replayed", count=len(rows))
    return [str(row["id"]) for row in rows]
