"""The work queues' names, without a broker: each knows its dead-letter queue and its delay tiers,
named as a running broker already holds them (the router's tiers by seconds, the others' by
milliseconds), and every tier addressed by its delay in milliseconds."""

import pytest

from schemas.topology import Topology, delay_ms, tiers_ms

TOPOLOGY = Topology(prefix="rb")


def test_each_work_queue_knows_its_dead_letter_queue() -> None:
    assert (TOPOLOGY.raw.name, TOPOLOGY.raw.dead) == ("rb.raw", "rb.dead")
    assert (TOPOLOGY.deliveries.name, TOPOLOGY.deliveries.dead) == ("rb.deliveries", "rb.delivery.dead")
    assert TOPOLOGY.delivery_attempts.names() == ["rb.delivery.attempts", "rb.delivery.dead"]
    assert TOPOLOGY.itep_orders.names() == ["rb.itep.orders", "rb.itep.dead"]
    assert TOPOLOGY.itep_fulfillment.names() == ["rb.itep.fulfillment", "rb.itep.dead"]


def test_tiers_keep_the_names_a_running_broker_holds() -> None:
    assert TOPOLOGY.raw.tier(5000) == "rb.retry.5s"
    assert TOPOLOGY.raw.tier(200) == "rb.retry.0.2s"
    assert TOPOLOGY.delivery_attempts.tier(5000) == "rb.delivery.retry.5000ms"
    assert TOPOLOGY.itep_fulfillment.names([10000]) == [
        "rb.itep.fulfillment",
        "rb.itep.dead",
        "rb.itep.fulfillment.retry.10000ms",
    ]


def test_each_tier_hands_its_messages_back_to_its_work() -> None:
    raw = TOPOLOGY.raw.tiers
    assert raw is not None and (raw.exchange, raw.routing_key, raw.quorum) == ("rb.raw", "retry", True)
    attempts = TOPOLOGY.delivery_attempts.tiers
    assert attempts is not None and (attempts.exchange, attempts.routing_key) == ("", "rb.delivery.attempts")
    fulfillment = TOPOLOGY.itep_fulfillment.tiers
    assert fulfillment is not None and fulfillment.routing_key == "rb.itep.fulfillment"


def test_a_queue_without_tiers_names_none() -> None:
    with pytest.raises(ValueError, match=r"rb\.itep\.orders has no delay tiers"):
        TOPOLOGY.itep_orders.tier(1000)


def test_delays_become_whole_milliseconds_one_tier_each() -> None:
    assert delay_ms(0.2) == 200 and delay_ms(4.35) == 4350 and delay_ms(0.0001) == 1
    assert tiers_ms([30, 5, 5, 0.2]) == [200, 5000, 30000]
