"""The delivery side of the broker: the deliveries queue on the results exchange, the attempts
queue, and one delay tier per retry delay. Declared idempotently by every worker (and the admin API,
which publishes replays)."""

import asyncio
from collections.abc import Sequence
from typing import cast

import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq import spec

from common import tracing
from common.broker import declare_work_queue
from schemas.delivery import Attempt, encode_task
from schemas.topology import Topology
from subscribers.schedule import Schedule


async def declare_deliveries(
    channel: AbstractChannel, topology: Topology, results: AbstractExchange
) -> AbstractQueue:
    queue = await declare_work_queue(channel, topology.deliveries)
    await queue.bind(results, routing_key="#")
    return queue


async def declare_attempts_queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    """The attempts queue without its tiers (what the admin API needs to publish replays)."""
    return await declare_work_queue(channel, topology.delivery_attempts)


async def declare_attempts(channel: AbstractChannel, topology: Topology, schedule: Schedule) -> AbstractQueue:
    return await declare_work_queue(channel, topology.delivery_attempts, schedule.tiers_ms())


def delivery_queue_names(topology: Topology, schedule: Schedule) -> list[str]:
    """Every queue the delivery side declares (for operators' and tests' clean-up)."""
    names = [*topology.deliveries.names(), *topology.delivery_attempts.names(schedule.tiers_ms())]
    return list(dict.fromkeys(names))


class TaskPublisher:
    """Publishes tasks on the default exchange (confirmed) to the attempts queue or a delay tier."""

    def __init__(self, channel: AbstractChannel, topology: Topology, *, timeout: float = 5.0) -> None:
        self._channel = channel
        self._topology = topology
        self._timeout = timeout

    async def now(self, task: Attempt) -> None:
        await self._publish(task, self._topology.delivery_attempts_queue)

    async def now_all(self, tasks: Sequence[Attempt]) -> None:
        """Publishes them all at once, their confirms awaited together (pipelined)."""
        if len(tasks) == 1:
            await self.now(tasks[0])
        elif tasks:
            await asyncio.gather(*(self.now(task) for task in tasks))

    async def later(self, task: Attempt, tier_ms: int) -> None:
        await self._publish(task, self._topology.delivery_attempts.tier(tier_ms))

    async def _publish(self, task: Attempt, queue: str) -> None:
        # Straight on the AMQP channel with `wait=False`, as the router publishes: aio-pika's publish
        # holds the channel's lock until the writer has sent the frame (one publish per turn of the
        # event loop on a channel), and builds a Message the broker never sees. The broker's confirm
        # is still awaited (a nack raises DeliveryError).
        channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        await channel.basic_publish(
            encode_task(task),
            routing_key=queue,
            properties=spec.Basic.Properties(
                message_id=task.delivery_id,
                content_type="application/msgpack",
                delivery_mode=2,  # persistent
                headers=tracing.headers(),
            ),
            timeout=self._timeout,
            wait=False,
        )
