"""Declaring the broker topology. Idempotent: every process declares what it uses at start-up, so
no process depends on another having started first."""

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from schemas.topology import Topology


async def declare_raw(channel: AbstractChannel, topology: Topology) -> tuple[AbstractExchange, AbstractQueue]:
    exchange = await channel.declare_exchange(
        topology.raw_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    # A quorum queue: replicated when the broker is a cluster, and its delivery limit stops a
    # message that kills its consumer from being redelivered for ever.
    queue = await channel.declare_queue(
        topology.raw_queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-delivery-limit": 20},
    )
    await queue.bind(exchange, routing_key="#")
    return exchange, queue


async def declare_results(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(
        topology.results_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
