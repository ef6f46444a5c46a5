"""iTEP orders against the real broker and database and a fake iTEP of the tests' own (it checks the
HMAC-SHA256 over the bytes it received): through the admin API and the command queue, retries, a
timeout that must not cost a second test ID, and the whole loop from an order to its result."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devkit.fake_itep import FakeItep
from ingress.app import create_app as create_ingress
from ingress.publisher import Publisher
from ingress.settings import IngressSettings
from ingress.sources import load_sources
from schemas.event import ResultEvent
from schemas.event import Status as ExamStatus
from schemas.itep_order import (
    OrderReply,
    Status,
)
from schemas.topology import Topology
from tests.support.itep import API_KEY, DELAYS, an_order, result_events, world
from tests.support.paths import ROOT, demo_secrets
from tests.support.pipeline import running_router


async def test_an_order_through_the_admin_api_gets_a_signed_call_and_a_test_id(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY)
    async with world(amqp_url, database_url, topology, db_schema, fake) as w:
        body = an_order()
        status, placed = await w.admin.call("POST", "/v1/itep/orders", body)
        assert status == 202, placed
        assert placed["status"] == Status.ORDERED and placed["reference"] == body["reference"]
        order_id = placed["id"]

        shown = await w.order(order_id, Status.TEST_ID_ASSIGNED)
        [assigned] = fake.assigned
        assert fake.refused == [] and fake.calls == 1  # the signature matched the bytes received
        assert shown["test_id"] == assigned.test_id and shown["attempts"] == 1
        assert shown["response"]["status"] == 200 and assigned.test_id in shown["response"]["body"]
        assert assigned.order["track"] == "RC"
        assert assigned.order["registration"]["trExternal_ID"] == order_id
        assert assigned.order["assigned-to"]["resultbus-order-id"] == order_id
        assert [h["change"] for h in shown["history"]] == [Status.ORDERED, Status.TEST_ID_ASSIGNED]

        ordered, got_id = await w.changed(2)
        assert (ordered.change, got_id.change) == (Status.ORDERED, Status.TEST_ID_ASSIGNED)
        assert got_id.reference == body["reference"] and got_id.test_id == assigned.test_id

        # The same order again (a caller retrying after a lost answer) is the same order.
        status, again = await w.admin.call("POST", "/v1/itep/orders", body)
        assert (status, again["id"]) == (202, order_id)
        status, by_ref = await w.admin.call("GET", "/v1/itep/orders", reference=body["reference"])
        assert (status, by_ref["id"]) == (200, order_id)
        status, conflict = await w.admin.call("POST", "/v1/itep/orders", {**body, "bcc": None})
        assert status == 422 and order_id in conflict["error"]
        await asyncio.sleep(0.3)
        assert len(fake.assigned) == 1


async def test_an_invalid_order_is_stored_rejected_with_every_problem_and_never_sent(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY)
    async with world(amqp_url, database_url, topology, db_schema, fake) as w:
        body = an_order(email=None, registration={"DOB_Month": 13, "Gender": "x"})
        status, placed = await w.admin.call("POST", "/v1/itep/orders", body)
        assert status == 202
        assert placed["status"] == Status.REJECTED
        assert placed["problems"] == [
            "Email required for product code [STX-Academic-Plus]: iTEP sends the test ID to it",
            "Out of range Birth Month [13]",
            "Invalid Gender [x]",
        ]
        [rejected] = await w.changed(1)
        assert rejected.change == Status.REJECTED and rejected.problems == placed["problems"]
        await asyncio.sleep(0.3)
        assert fake.calls == 0


async def test_an_order_through_the_command_queue_is_answered_with_its_id(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY)
    async with world(amqp_url, database_url, topology, db_schema, fake) as w:
        replies = await w.channel.declare_queue(exclusive=True)

        async def send(body: bytes, correlation: str) -> OrderReply:
            await w.channel.default_exchange.publish(
                aio_pika.Message(body, reply_to=replies.name, correlation_id=correlation),
                routing_key=topology.itep_orders.name,
            )
            async with asyncio.timeout(10):
                while (message := await replies.get(fail=False)) is None:
                    await asyncio.sleep(0.02)
            await message.ack()
            assert message.correlation_id == correlation
            import msgspec

            return msgspec.json.decode(message.body, type=OrderReply)

        body = an_order(product_code="GTX-Business-Core", email=None, bcc=None)
        reply = await send(json.dumps(body).encode(), "c-1")
        assert reply.status == Status.ORDERED and reply.reference == body["reference"] and reply.id
        shown = await w.order(reply.id, Status.TEST_ID_ASSIGNED)
        assert shown["test_id"] == fake.assigned[0].test_id
        # Sent twice (a redelivery, a retry): one order, one test ID.
        assert (await send(json.dumps(body).encode(), "c-2")).id == reply.id

        bad = await send(json.dumps(an_order(registration={"Birthday": "1/2"})).encode(), "c-3")
        assert bad.status == Status.REJECTED and bad.problems == ["Unable to parse Birth Date [1/2]"]
        nonsense = await send(b'{"reference": 5}', "c-4")
        assert nonsense.id is None and nonsense.error is not None and "reference" in nonsense.error
        await asyncio.sleep(0.3)
        assert len(fake.assigned) == 1


async def test_a_timeout_after_itep_assigned_never_costs_a_second_test_id(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY, plan=["timeout"], hang=3.0)
    async with world(amqp_url, database_url, topology, db_schema, fake, timeout=0.5) as w:
        _, placed = await w.admin.call("POST", "/v1/itep/orders", an_order())
        shown = await w.order(placed["id"], Status.UNCONFIRMED)
        [assigned] = fake.assigned  # iTEP did assign one; the answer never came
        assert "iTEP may have assigned a test ID" in shown["last_error"]

        # The task comes back (a duplicate, a redelivery, a retry): the order is not sent again.
        changes = await w.changed(2)
        ordered = next(c for c in changes if c.change == Status.ORDERED)
        from common.broker import persistent_message
        from schemas.itep_order import encode

        for _ in range(2):
            await w.channel.default_exchange.publish(
                persistent_message(encode(ordered), message_id=ordered.id, content_type="application/json"),
                routing_key=topology.itep_fulfillment.name,
            )
        await asyncio.sleep(1.0)
        assert fake.calls == 1 and len(fake.assigned) == 1
        assert (await w.order(placed["id"], Status.UNCONFIRMED))["attempts"] == 1

        # The operator finds the order id in iTEP's admin pages, beside the test ID, and records it.
        assert assigned.order["assigned-to"]["resultbus-order-id"] == placed["id"]
        status, recorded = await w.admin.call(
            "POST", f"/v1/itep/orders/{placed['id']}/test-id", {"test_id": assigned.test_id}
        )
        assert status == 200 and recorded["status"] == Status.TEST_ID_ASSIGNED
        assert recorded["test_id"] == assigned.test_id
        status, refused = await w.admin.call("POST", f"/v1/itep/orders/{placed['id']}/resend")
        assert status == 422 and "test_id_assigned" in refused["error"]
        assert fake.calls == 1


async def test_5xx_is_retried_from_the_delay_tiers_and_an_error_text_fails_the_order(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY, plan=["5xx", "5xx"])
    async with world(amqp_url, database_url, topology, db_schema, fake) as w:
        _, first = await w.admin.call("POST", "/v1/itep/orders", an_order())
        shown = await w.order(first["id"], Status.TEST_ID_ASSIGNED)
        assert shown["attempts"] == 3 and len(fake.assigned) == 1
        assert [h["change"] for h in shown["history"]] == [
            Status.ORDERED,
            Status.RETRYING,
            Status.RETRYING,
            Status.TEST_ID_ASSIGNED,
        ]
        assert "iTEP answered 503" in shown["history"][1]["detail"]

        fake.plan = ["error:No available test IDs for GTX-Business-Core"]
        _, second = await w.admin.call("POST", "/v1/itep/orders", an_order(product_code="GTX-Business-Core"))
        failed = await w.order(second["id"], Status.FAILED)
        assert failed["last_error"] == "iTEP refused the order: No available test IDs for GTX-Business-Core"
        assert failed["response"]["parsed"]["error"] == "No available test IDs for GTX-Business-Core"

        # Sent again by an operator once the inventory is topped up.
        status, resent = await w.admin.call("POST", f"/v1/itep/orders/{second['id']}/resend")
        assert status == 202 and resent["status"] == Status.ORDERED
        assert (await w.order(second["id"], Status.TEST_ID_ASSIGNED))["attempts"] == 2


async def test_itep_never_reached_is_retried_then_failed(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY)
    async with world(
        amqp_url, database_url, topology, db_schema, fake, endpoint="http://127.0.0.1:9/closed"
    ) as w:
        _, placed = await w.admin.call("POST", "/v1/itep/orders", an_order())
        failed = await w.order(placed["id"], Status.FAILED)
        assert failed["attempts"] == len(DELAYS) + 1
        assert failed["last_error"].startswith("gave up after 3 attempts: iTEP not reached")


@pytest.fixture
async def ingress(
    amqp_url: str, topology: Topology
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    publisher = Publisher(amqp_url, topology, confirm_timeout=2.0)
    await publisher.connect()
    settings = IngressSettings.from_env({"RESULTBUS_AMQP_PREFIX": topology.prefix})
    sources = load_sources(ROOT / "deploy" / "sources.example.toml", demo_secrets())
    try:
        async with TestClient(
            TestServer(create_ingress(settings, sources, publisher), host="127.0.0.1")
        ) as client:
            yield client
    finally:
        await publisher.close()


async def test_the_whole_loop_from_an_order_to_its_result(
    amqp_url: str,
    database_url: str,
    topology: Topology,
    db_schema: str,
    ingress: TestClient[web.Request, web.Application],
) -> None:
    fake = FakeItep(
        api_key=API_KEY,
        results_url=str(ingress.make_url("/hooks/itep-demo")),
        results_auth=("itep", demo_secrets()["RESULTBUS_DEMO_ITEP_PASSWORD"]),
        results_after=0.2,
    )
    async with (
        running_router(amqp_url, database_url, topology, db_schema) as router,
        world(amqp_url, database_url, topology, db_schema, fake) as w,
    ):
        body = an_order()
        _, placed = await w.admin.call("POST", "/v1/itep/orders", body)
        order_id = placed["id"]
        # iTEP assigns a test ID, the candidate finishes, iTEP grades: two results webhooks with
        # OID = the order id, through the ingress and the router.
        shown = await w.order(order_id, ExamStatus.COMPLETED)
        [assigned] = fake.assigned
        assert shown["test_id"] == assigned.test_id

        events = await result_events(router, 2)
        assert [e.type for e in events] == ["finished", "completed"]
        for event in events:
            assert event.order is not None
            assert (event.order.id, event.order.reference) == (order_id, body["reference"])
            assert event.exam is not None and event.exam.test_id == assigned.test_id
        stored = await router.pool.fetchval(
            "SELECT payload->'order'->>'id' FROM events WHERE id = $1", events[1].id
        )
        assert stored == order_id

        history = shown["history"]
        assert [h["change"] for h in history] == [
            Status.ORDERED,
            Status.TEST_ID_ASSIGNED,
            ExamStatus.FINISHED,
            ExamStatus.COMPLETED,
        ]
        assert [h["event_id"] for h in history[2:]] == [e.id for e in events]
        assert [h["event_type"] for h in history[2:]] == ["finished", "completed"]
        changes = [c.change for c in await w.changed(4)]
        assert changes == [Status.ORDERED, Status.TEST_ID_ASSIGNED, ExamStatus.FINISHED, ExamStatus.COMPLETED]


async def test_a_result_naming_an_unconfirmed_order_gives_it_its_test_id(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    fake = FakeItep(api_key=API_KEY, plan=["timeout"], hang=2.0)
    async with (
        running_router(amqp_url, database_url, topology, db_schema) as router,
        world(amqp_url, database_url, topology, db_schema, fake, timeout=0.3) as w,
    ):
        _, placed = await w.admin.call("POST", "/v1/itep/orders", an_order())
        await w.order(placed["id"], Status.UNCONFIRMED)
        [assigned] = fake.assigned
        from devkit import samples
        from schemas.vendor import Vendor

        data = samples.itep("Complete", test_id=assigned.test_id, OID=placed["id"])
        body, content_type = samples.itep_urlencoded(data)
        await router.publish_raw(samples.envelope(Vendor.ITEP, body, content_type=content_type))
        shown = await w.order(placed["id"], ExamStatus.COMPLETED)
        assert shown["test_id"] == assigned.test_id
        assert [h["change"] for h in shown["history"]][-2:] == [Status.TEST_ID_ASSIGNED, ExamStatus.COMPLETED]
        [event] = await result_events(router, 1)
        assert event.order is not None and event.order.id == placed["id"]


async def test_a_reused_test_id_never_ties_a_result_to_another_order(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    # A test ID handed out twice (a fake iTEP restarted, an operator's typo): results that name it
    # go through the real router; a test ID alone never makes a result another order's.
    from devkit import samples
    from schemas.vendor import Vendor

    fake = FakeItep(api_key=API_KEY)
    async with (
        running_router(amqp_url, database_url, topology, db_schema) as router,
        world(amqp_url, database_url, topology, db_schema, fake) as w,
    ):
        _, first = await w.admin.call("POST", "/v1/itep/orders", an_order())
        _, second = await w.admin.call("POST", "/v1/itep/orders", an_order())
        taken = (await w.order(first["id"], Status.TEST_ID_ASSIGNED))["test_id"]
        own = (await w.order(second["id"], Status.TEST_ID_ASSIGNED))["test_id"]
        assert taken != own

        async def result(status: str, **data: Any) -> ResultEvent:
            body, content_type = samples.itep_urlencoded(samples.itep(status, **data))
            await router.publish_raw(samples.envelope(Vendor.ITEP, body, content_type=content_type))
            [event] = await result_events(router, 1)
            router.received.clear()
            return event

        # 1. An OID that names no order, with the first order's test ID: published without an order.
        stranger = str(uuid.uuid4())
        event = await result("Finished", test_id=taken, OID=stranger)
        assert event.order is None
        shown = await w.order(first["id"], Status.TEST_ID_ASSIGNED)
        conflict = shown["history"][-1]
        assert conflict["change"] == "conflict" and conflict["event_id"] == event.id
        assert stranger in conflict["detail"] and "names no order" in conflict["detail"]
        assert "not tied to this order" in conflict["detail"]

        # 2. The second order's OID with the first order's test ID: the result is the OID's, both
        # orders say why, neither moves.
        event = await result("Complete", test_id=taken, OID=second["id"])
        assert event.order is not None and event.order.id == second["id"]
        for order, status in ((first, Status.TEST_ID_ASSIGNED), (second, Status.TEST_ID_ASSIGNED)):
            shown = await w.order(order["id"], status)
            assert shown["history"][-1]["change"] == "conflict", shown["history"]
            assert shown["history"][-1]["event_id"] == event.id
        assert (await w.order(second["id"], Status.TEST_ID_ASSIGNED))["test_id"] == own

        # 3. No OID at all: the test ID is the only tie, and the order's history says it was.
        event = await result("Complete", test_id=own, OID=None)
        assert event.order is not None and event.order.id == second["id"]
        shown = await w.order(second["id"], ExamStatus.COMPLETED)
        assert "tied by its test ID" in shown["history"][-1]["detail"]

        changes = [c.change for c in await w.changed(8)]
        assert changes.count("conflict") == 3 and changes[-1] == ExamStatus.COMPLETED  # 1 + 2 conflicts


def test_every_field_of_the_order_json_is_described_in_the_docs() -> None:
    from admin.itep_orders import ItepOrder, ItepResponse, OrderChange

    text = (ROOT / "docs" / "itep-orders.md").read_text()
    for struct in (ItepOrder, ItepResponse, OrderChange):
        for name in struct.__struct_fields__:
            assert f"`{name}`" in text, f"{struct.__name__}.{name} is not described in docs/itep-orders.md"
