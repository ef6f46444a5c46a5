"""Declaring the broker topology. Idempotent: every process declares what it uses at start-up, so
no process depends on another having started first."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from common.amqp import connect_robust
from schemas.topology import Topology

if TYPE_CHECKING:
    from common.service import Service

# What can go wrong between a process and the broker: worth a 503 at the edge and a retry inside;
# anything else is a bug. A publish on a channel closed under it raises ChannelInvalidStateError,
# which is a RuntimeError rather than an AMQPError.
BROKER_ERRORS = (
    ConnectionError,
    OSError,
    TimeoutError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)

# Quorum queues: replicated when the broker is a cluster. Dead-lettering "at least once" (which needs
# reject-publish overflow) so that a message moving to the dead-letter or back from a retry tier is
# never dropped on the way.
_QUORUM_AT_LEAST_ONCE = {
    "x-queue-type": "quorum",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}

# A message redelivered this often is killing its consumer: it goes to the dead-letter queue.
RAW_DELIVERY_LIMIT = 20


async def declare_raw(channel: AbstractChannel, topology: Topology) -> tuple[AbstractExchange, AbstractQueue]:
    exchange = await channel.declare_exchange(
        topology.raw_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_queue(topology.dead_queue, durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(
        topology.raw_queue,
        durable=True,
        arguments={
            **_QUORUM_AT_LEAST_ONCE,
            "x-delivery-limit": RAW_DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.dead_queue,
        },
    )
    await queue.bind(exchange, routing_key="#")
    return exchange, queue


async def declare_retry_tiers(channel: AbstractChannel, topology: Topology, delays: Sequence[float]) -> None:
    """One queue per delay. Nothing consumes them: each message waits out the TTL and is dead-lettered
    to the raw exchange, and so back into the raw queue."""
    for delay in delays:
        await channel.declare_queue(
            topology.retry_queue(delay),
            durable=True,
            arguments={
                **_QUORUM_AT_LEAST_ONCE,
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": topology.raw_exchange,
                "x-dead-letter-routing-key": "retry",
            },
        )


async def declare_results(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(
        topology.results_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


def persistent_message(
    body: bytes,
    *,
    message_id: str | None,
    content_type: str | None,
    headers: Mapping[str, Any] | None = None,
    timestamp: datetime | None = None,
) -> aio_pika.Message:
    """A message that survives a broker restart, with the id consumers deduplicate by."""
    return aio_pika.Message(
        body,
        headers=dict(headers) if headers is not None else None,
        message_id=message_id,
        content_type=content_type,
        timestamp=timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def open_connection(service: "Service", url: str) -> AbstractRobustConnection:
    """A robust broker connection for the life of `service`: closed at shutdown (after its work
    tasks, so unsettled messages go back to their queues), and the process unready while it is down."""
    connection = await connect_robust(url)  # several addresses: a cluster, see common/amqp.py
    service.on_close(connection.close)
    service.ready_when(connection.connected.is_set)
    return connection
