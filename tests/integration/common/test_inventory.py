"""The one list of a deployment's queues and exchanges (common/inventory.py) names them as the roles
do, from the same environment: the defaults it repeats are the roles' own, and every queue the roles
declare on the real broker is in it."""

import aio_pika

from common import inventory
from common.broker import declare_raw, declare_results, declare_tiers
from schemas.topology import Topology, tiers_ms
from subscribers.queues import declare_attempts, declare_deliveries, delivery_queue_names
from subscribers.schedule import DEFAULT_SCHEDULE, Schedule
from workers.delivery.settings import DeliverySettings
from workers.fulfillment.broker import declare_fulfillment, declare_orders_queue, fulfillment_queue_names
from workers.fulfillment.settings import FulfillmentSettings
from workers.router.settings import RouterSettings

ENV = {
    "RESULTBUS_DELIVERY_SCHEDULE": "0,1s,2m",
    "RESULTBUS_DELIVERY_PARK": "500ms",
    "RESULTBUS_ITEP_RETRY_DELAYS": "1s,1m",
}


def _fulfillment() -> FulfillmentSettings:
    return FulfillmentSettings(endpoint="", api_key="", track="", gtx_header="", stx_header="")


def test_the_repeated_defaults_are_the_roles_own() -> None:
    assert tuple(DEFAULT_SCHEDULE) == inventory.DEFAULT_DELIVERY_SCHEDULE
    assert DeliverySettings().schedule.park == inventory.DEFAULT_DELIVERY_PARK
    assert _fulfillment().retry_delays == inventory.DEFAULT_ITEP_RETRY_DELAYS
    assert inventory.delivery_tiers_ms({}) == Schedule(tuple(DEFAULT_SCHEDULE)).tiers_ms()
    assert inventory.delivery_tiers_ms(ENV) == Schedule((0, 1, 120), park=0.5).tiers_ms()


def test_every_queue_the_roles_name_is_listed_once() -> None:
    topology = Topology(prefix="inv")
    for env in ({}, ENV):
        names = [q.name for q in inventory.queues_of(topology, env)]
        assert len(names) == len(set(names))
        delivery = DeliverySettings.from_env(env).schedule
        fulfillment = inventory._durations(
            env, "RESULTBUS_ITEP_RETRY_DELAYS", inventory.DEFAULT_ITEP_RETRY_DELAYS
        )
        assert set(delivery_queue_names(topology, delivery)) <= set(names)
        assert set(fulfillment_queue_names(topology, fulfillment)) <= set(names)
    # The count a newcomer sees after `make run` with the defaults.
    assert len(inventory.queues_of(topology, {})) == 26
    assert inventory.exchanges(topology) == ["inv.raw", "inv.results"]


async def test_what_the_roles_declare_is_what_the_inventory_finds(amqp_url: str, topology: Topology) -> None:
    listed = inventory.queues_of(topology, {})
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare_raw(channel, topology)
        await declare_tiers(channel, topology.raw, tiers_ms(RouterSettings().retry_delays))
        results = await declare_results(channel, topology)
        await declare_deliveries(channel, topology, results)
        await declare_attempts(channel, topology, DeliverySettings().schedule)
        await declare_orders_queue(channel, topology)
        await declare_fulfillment(channel, topology, results, _fulfillment().retry_delays)
        depths = await inventory.passive_depths(connection, listed)
        assert [d.queue for d in depths] == listed
        assert all(d.messages == 0 and d.consumers == 0 for d in depths), depths
        # A queue of another prefix is not ours: passive, it is reported as not declared.
        [other] = await inventory.passive_depths(
            connection, [inventory.Queue("raw", f"{topology.prefix}-x.raw")]
        )
        assert other.messages is None
