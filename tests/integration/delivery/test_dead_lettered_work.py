"""Delivery work that is redelivered too often is dead-lettered, never dropped, and can be replayed to
the queue it died in (real RabbitMQ)."""

import asyncio

import aio_pika

from common.broker import declare_results
from common.replay import replay_delivery_dead_letters
from schemas.topology import Topology
from subscribers.queues import declare_deliveries


async def test_redelivered_too_often_is_dead_lettered_then_replayed(
    amqp_url: str, topology: Topology
) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        results = await declare_results(channel, topology)
        deliveries = await declare_deliveries(channel, topology, results)
        await results.publish(
            aio_pika.Message(b'{"event": 1}', message_id="e-1"), routing_key="itep.completed"
        )
        # A handler that fails every time: the quorum queue's delivery limit ends it.
        async with asyncio.timeout(20):
            while (message := await deliveries.get(fail=False)) is not None:
                await message.nack(requeue=True)
            # Dead-lettering happens in the broker's own time.
            while not (
                await channel.declare_queue(topology.delivery_dead_queue, passive=True)
            ).declaration_result.message_count:
                await asyncio.sleep(0.05)

        assert await replay_delivery_dead_letters(channel, topology) == 1
        back = await deliveries.get(fail=False)
        assert back is not None and back.body == b'{"event": 1}' and back.message_id == "e-1"
        await back.ack()
