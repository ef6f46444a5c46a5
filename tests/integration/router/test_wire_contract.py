"""What goes on the wire carries its `schema` string, as docs/consumers.md promises: decoded from the
bytes actually published by a router and actually delivered to a subscriber, not from our Structs."""

import json
from datetime import UTC, datetime

import msgspec
import pytest

from devkit import samples
from schemas.delivery import (
    DELIVERY_FAILED_SCHEMA,
    SUBSCRIPTION_DISABLED_SCHEMA,
    SUBSCRIPTION_UNSUBSCRIBED_SCHEMA,
    VERIFICATION_SCHEMA,
    DeliveryFailed,
    SubscriptionDisabled,
    SubscriptionUnsubscribed,
    Verification,
    encode_operational,
    encode_verification,
)
from schemas.event import SCHEMA_ID, decode_event, encode_event, event_json_schema
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.delivery import subscriber, world
from tests.support.pipeline import running_router
from workers.router.normalize import normalize


async def test_published_and_delivered_events_name_their_schema(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with (
        subscriber() as sub,
        world(amqp_url, database_url, topology, db_schema) as w,
    ):
        await w.subscribe(sub.url("/hook"))
        async with running_router(amqp_url, database_url, topology, db_schema) as router:
            await router.publish_raw(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())))
            [event] = await router.events(1)
            published = json.loads(router.received[0].body)
            [delivered] = await sub.wait("/hook", 1)
    assert published["schema"] == SCHEMA_ID == "resultbus.result-event/v1"
    assert next(iter(published)) == "schema"  # first, so that a consumer can branch before reading on
    assert json.loads(delivered.body)["schema"] == SCHEMA_ID
    assert decode_event(delivered.body) == event


def test_the_json_schema_requires_the_schema_string() -> None:
    definition = event_json_schema()["$defs"]["ResultEvent"]  # type: ignore[index]
    assert "schema" in definition["required"]
    assert definition["properties"]["schema"] == {"enum": [SCHEMA_ID]}


def test_a_decoder_refuses_another_version() -> None:
    [item] = normalize(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress())))
    event = json.loads(encode_event(item.event))
    assert decode_event(json.dumps(event).encode()) == item.event
    event["schema"] = "resultbus.result-event/v2"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.schema"):
        decode_event(json.dumps(event).encode())


NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "schema"),
    [
        (
            encode_operational(
                DeliveryFailed(
                    id="f1", delivery_id="d1", subscription_id="s1", event_id="e1",
                    endpoint="https://hooks.example.com/x", attempts=8, failed_at=NOW,
                )
            ),
            DELIVERY_FAILED_SCHEMA,
        ),
        (
            encode_operational(
                SubscriptionDisabled(
                    id="x1", subscription_id="s1", endpoint="https://hooks.example.com/x",
                    reason="410 Gone", disabled_at=NOW,
                )
            ),
            SUBSCRIPTION_DISABLED_SCHEMA,
        ),
        (
            encode_operational(
                SubscriptionUnsubscribed(
                    id="u1", subscription_id="s1", endpoint="https://hooks.example.com/x",
                    reason="failed checks", failed_checks=3, failing_since=NOW, last_error="timeout",
                    unsubscribed_at=NOW,
                )
            ),
            SUBSCRIPTION_UNSUBSCRIBED_SCHEMA,
        ),
        (encode_verification(Verification(id="v1", timestamp=NOW)), VERIFICATION_SCHEMA),
    ],
)  # fmt: skip
def test_operational_bodies_name_their_schema_and_type(body: bytes, schema: str) -> None:
    decoded = json.loads(body)
    assert decoded["schema"] == schema
    assert decoded["type"] == schema.removeprefix("resultbus.").split("/")[0].replace("-", ".")
