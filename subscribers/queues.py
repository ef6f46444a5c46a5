"""The delivery side of the broker: the deliveries queue on the results exchange, the attempts
queue, and one delay tier per retry delay. Declared idempotently by every worker (and the admin API,
which publishes replays)."""

import asyncio
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldValue

from common import tracing
from common.broker import persistent_message
from schemas.delivery import Attempt, encode_task
from schemas.topology import Topology
from subscribers.schedule import Schedule


def _work_queue_arguments(topology: Topology) -> dict[str, FieldValue]:
    # Redelivered too often, a message goes to the delivery dead-letter queue, never nowhere.
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.delivery_dead_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_deliveries(
    channel: AbstractChannel, topology: Topology, results: AbstractExchange
) -> AbstractQueue:
    await channel.declare_queue(
        topology.delivery_dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    queue = await channel.declare_queue(
        topology.deliveries_queue, durable=True, arguments=_work_queue_arguments(topology)
    )
    await queue.bind(results, routing_key="#")
    return queue


async def declare_attempts_queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    await channel.declare_queue(
        topology.delivery_dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    return await channel.declare_queue(
        topology.delivery_attempts_queue, durable=True, arguments=_work_queue_arguments(topology)
    )


async def declare_attempts(channel: AbstractChannel, topology: Topology, schedule: Schedule) -> AbstractQueue:
    queue = await declare_attempts_queue(channel, topology)
    for delay_ms in schedule.tiers_ms():
        # Classic queues: a tier only holds messages until they expire, and dead-letters them
        # through the default exchange straight back to the attempts queue.
        await channel.declare_queue(
            topology.delivery_retry_queue(delay_ms),
            durable=True,
            arguments={
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": topology.delivery_attempts_queue,
            },
        )
    return queue


def delivery_queue_names(topology: Topology, schedule: Schedule) -> list[str]:
    """Every queue the delivery side declares (for operators' and tests' clean-up)."""
    return [
        topology.deliveries_queue,
        topology.delivery_attempts_queue,
        topology.delivery_dead_queue,
        *(topology.delivery_retry_queue(ms) for ms in schedule.tiers_ms()),
    ]


class TaskPublisher:
    """Publishes tasks on the default exchange (confirmed) to the attempts queue or a delay tier."""

    def __init__(self, channel: AbstractChannel, topology: Topology, *, timeout: float = 5.0) -> None:
        self._exchange = channel.default_exchange
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
        await self._publish(task, self._topology.delivery_retry_queue(tier_ms))

    async def _publish(self, task: Attempt, queue: str) -> None:
        await self._exchange.publish(
            persistent_message(
                encode_task(task),
                message_id=task.delivery_id,
                content_type="application/msgpack",
                headers=tracing.headers() if tracing.ENABLED else None,
            ),
            routing_key=queue,
            timeout=self._timeout,
        )
