"""What the console asks the broker: queue depths (passive declares: nothing is created), a look at
the dead letters, and the replays, each on a short-lived channel of the admin process's connection."""

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiormq
import msgspec
from aio_pika.abc import AbstractChannel, AbstractConnection

from common import inventory, replay
from common.consumer import ATTEMPTS, FIRST_FAILED_AT, LAST_FAILED_AT, QUEUE, REASON, ROUTING_KEY
from common.db import DbConn
from common.inventory import passive_depths
from schemas.topology import Topology


class Depth(msgspec.Struct, frozen=True):
    group: str  # raw | raw retry | raw dead | delivery | delivery retry | delivery dead | itep …
    queue: str
    messages: int | None  # None: the queue does not exist (yet)
    consumers: int | None
    consumed_by: str | None = None  # the role whose workers consume it (common.inventory.Queue)


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str | None
    routing_key: str | None
    queue: str | None  # where it died
    attempts: str | None
    first_failed_at: str | None
    last_failed_at: str | None
    reason: str | None
    size: int


class Broker:
    def __init__(
        self, connection: AbstractConnection, topology: Topology, queues: list[inventory.Queue]
    ) -> None:
        """`queues`: the deployment's (common/inventory.py), named as the workers name them."""
        self._connection = connection
        self.topology = topology
        self.queues = queues

    @contextlib.asynccontextmanager
    async def _channel(self, *, confirms: bool = False) -> AsyncIterator[AbstractChannel]:
        channel = await self._connection.channel(publisher_confirms=confirms)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def depths(self) -> list[Depth]:
        return [
            Depth(q.queue.group, q.queue.name, q.messages, q.consumers, q.queue.consumed_by)
            for q in await passive_depths(self._connection, self.queues)
        ]

    async def dead_letters(self, queue: str, limit: int) -> tuple[int | None, list[DeadLetter]]:
        """The queue's depth and its first `limit` messages, taken without ack and so given back when
        the channel closes (as `python -m workers inspect dead` does)."""
        async with self._channel() as channel:
            try:
                dead = await channel.declare_queue(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None, []
            waiting = dead.declaration_result.message_count
            shown: list[DeadLetter] = []
            for _ in range(min(limit, waiting or 0)):
                message = await dead.get(fail=False)
                if message is None:
                    break
                headers = message.headers or {}
                shown.append(
                    DeadLetter(
                        message_id=message.message_id,
                        routing_key=_header(headers, ROUTING_KEY) or message.routing_key,
                        queue=_header(headers, QUEUE) or _header(headers, "x-first-death-queue"),
                        attempts=_header(headers, ATTEMPTS),
                        first_failed_at=_header(headers, FIRST_FAILED_AT),
                        last_failed_at=_header(headers, LAST_FAILED_AT),
                        reason=_header(headers, REASON) or _header(headers, "x-first-death-reason"),
                        size=len(message.body),
                    )
                )
            return waiting, shown

    async def replay_dead(self, which: str) -> int:
        async with self._channel(confirms=True) as channel:
            if which == "raw":
                return await replay.replay_dead_letters(channel, self.topology)
            return await replay.replay_delivery_dead_letters(channel, self.topology)

    async def replay_rejected(self, conn: DbConn, **filters: Any) -> list[str]:
        async with self._channel(confirms=True) as channel:
            return await replay.replay_rejected(conn, channel, self.topology, **filters)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
