"""Declaring the broker topology. Idempotent: every process declares what it uses at start-up, so
no process depends on another having started first."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from common.amqp import connect_robust
from schemas.topology import Topology, WorkQueue

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
DELIVERY_LIMIT = 20


async def declare_work_queue(
    channel: AbstractChannel, work: WorkQueue, tiers_ms: Iterable[int] = ()
) -> AbstractQueue:
    """`work`, its dead-letter queue and the delay tiers of `tiers_ms`: every work queue of the
    pipeline (the raw queue, the delivery and fulfillment queues) is declared here, the one way."""
    await channel.declare_queue(work.dead, durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(
        work.name,
        durable=True,
        arguments={
            **_QUORUM_AT_LEAST_ONCE,
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": work.dead,
        },
    )
    await declare_tiers(channel, work, tiers_ms)
    return queue


async def declare_tiers(channel: AbstractChannel, work: WorkQueue, tiers_ms: Iterable[int]) -> None:
    """One queue per delay. Nothing consumes them: each message waits out the TTL and is
    dead-lettered back to `work` (see schemas/topology.py `Tiers`)."""
    tiers = work.tiers
    for delay_ms in tiers_ms:
        assert tiers is not None, f"{work.name} has no delay tiers"
        await channel.declare_queue(
            tiers.name(delay_ms),
            durable=True,
            arguments={
                **(_QUORUM_AT_LEAST_ONCE if tiers.quorum else {}),
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": tiers.exchange,
                "x-dead-letter-routing-key": tiers.routing_key,
            },
        )


async def declare_raw(channel: AbstractChannel, topology: Topology) -> tuple[AbstractExchange, AbstractQueue]:
    """The raw exchange and the routers' work queue on it (its tiers: `declare_tiers`)."""
    exchange = await channel.declare_exchange(
        topology.raw_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await declare_work_queue(channel, topology.raw)
    await queue.bind(exchange, routing_key="#")
    return exchange, queue


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


class Described(Protocol):
    """What a message says of itself, whether aio-pika's (an incoming message) or aiormq's (the
    properties of a delivered one)."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...


def republished(body: bytes, original: Described, headers: Mapping[str, Any]) -> aio_pika.Message:
    """A message sent on again (to a delay tier, a dead-letter queue, or back from one) with new
    headers: its body, id, content type and time as they were."""
    return persistent_message(
        body,
        headers=headers,
        message_id=original.message_id,
        content_type=original.content_type,
        timestamp=original.timestamp,
    )


async def open_connection(service: "Service", url: str) -> AbstractRobustConnection:
    """A robust broker connection for the life of `service`: closed at shutdown (after its work
    tasks, so unsettled messages go back to their queues), and the process unready while it is down."""
    connection = await connect_robust(url)  # several addresses: a cluster, see common/amqp.py
    service.on_close(connection.close)
    service.ready_when(connection.connected.is_set)
    return connection
