"""The fulfillment side of the broker: the command queue for orders, the work queue of orders to
send (bound to `resultbus.itep.order.ordered` on the results exchange), its delay tiers, and a
dead-letter queue for what no handler could take."""

from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from common.broker import declare_work_queue, persistent_message
from schemas.itep_order import Status, order_routing_key
from schemas.topology import Topology, delay_ms, tiers_ms


async def declare_orders_queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    return await declare_work_queue(channel, topology.itep_orders)


async def declare_fulfillment(
    channel: AbstractChannel, topology: Topology, results: AbstractExchange, delays: Sequence[float]
) -> AbstractQueue:
    queue = await declare_work_queue(channel, topology.itep_fulfillment, tiers_ms(delays))
    await queue.bind(results, routing_key=order_routing_key(Status.ORDERED))
    return queue


def fulfillment_queue_names(topology: Topology, delays: Sequence[float]) -> list[str]:
    """Every queue the fulfillment side declares (for clean-up)."""
    return list(
        dict.fromkeys([*topology.itep_orders.names(), *topology.itep_fulfillment.names(tiers_ms(delays))])
    )


class Later:
    """Puts an order's task into a delay tier (confirmed), to come back to the work queue."""

    def __init__(self, channel: AbstractChannel, topology: Topology, *, timeout: float) -> None:
        self._exchange = channel.default_exchange
        self._topology = topology
        self._timeout = timeout

    async def after(self, delay: float, body: bytes, message_id: str | None) -> None:
        await self._exchange.publish(
            persistent_message(body, message_id=message_id, content_type="application/json"),
            routing_key=self._topology.itep_fulfillment.tier(delay_ms(delay)),
            timeout=self._timeout,
        )
