"""The fulfillment side of the broker: the command queue for orders, the work queue of orders to
send (bound to `resultbus.itep.order.ordered` on the results exchange), its delay tiers, and a
dead-letter queue for what no handler could take."""

from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldValue

from common.broker import persistent_message
from schemas.itep_order import (
    Status,
    fulfillment_queue,
    fulfillment_retry_queue,
    itep_dead_queue,
    order_routing_key,
    orders_queue,
)
from schemas.topology import Topology


def _work_queue_arguments(topology: Topology) -> dict[str, FieldValue]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": itep_dead_queue(topology),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def tiers_ms(delays: Sequence[float]) -> list[int]:
    return sorted({max(1, round(delay * 1000)) for delay in delays})


async def declare_orders_queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    await channel.declare_queue(itep_dead_queue(topology), durable=True, arguments={"x-queue-type": "quorum"})
    return await channel.declare_queue(
        orders_queue(topology), durable=True, arguments=_work_queue_arguments(topology)
    )


async def declare_fulfillment(
    channel: AbstractChannel, topology: Topology, results: AbstractExchange, delays: Sequence[float]
) -> AbstractQueue:
    await channel.declare_queue(itep_dead_queue(topology), durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(
        fulfillment_queue(topology), durable=True, arguments=_work_queue_arguments(topology)
    )
    await queue.bind(results, routing_key=order_routing_key(Status.ORDERED))
    for delay_ms in tiers_ms(delays):
        # Classic queues that only hold messages until they expire, then hand them back through
        # the default exchange to the work queue (as the delivery tiers do).
        await channel.declare_queue(
            fulfillment_retry_queue(topology, delay_ms),
            durable=True,
            arguments={
                "x-message-ttl": delay_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": fulfillment_queue(topology),
            },
        )
    return queue


def fulfillment_queue_names(topology: Topology, delays: Sequence[float]) -> list[str]:
    """Every queue the fulfillment side declares (for clean-up)."""
    return [
        orders_queue(topology),
        fulfillment_queue(topology),
        itep_dead_queue(topology),
        *(fulfillment_retry_queue(topology, ms) for ms in tiers_ms(delays)),
    ]


class Later:
    """Puts an order's task into a delay tier (confirmed), to come back to the work queue."""

    def __init__(self, channel: AbstractChannel, topology: Topology, *, timeout: float) -> None:
        self._exchange = channel.default_exchange
        self._topology = topology
        self._timeout = timeout

    async def after(self, delay: float, body: bytes, message_id: str | None) -> None:
        await self._exchange.publish(
            persistent_message(body, message_id=message_id, content_type="application/json"),
            routing_key=fulfillment_retry_queue(self._topology, tiers_ms([delay])[0]),
            timeout=self._timeout,
        )
