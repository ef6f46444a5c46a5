"""Each exam's events reach a subscription in the exam's order (issue 20): through the real router
code (which gives every event its place), the delivery worker, the real broker and database, and
loopback subscribers. `all` sends every event, one after the other; `latest` lets a newer event
supersede one still waiting."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import msgspec
import pytest
from aiohttp import web

from devkit import samples
from schemas.delivery import Attempt, encode_task
from schemas.topology import Topology
from schemas.vendor import Vendor
from subscribers.schedule import Schedule
from tests.support.delivery import FAST, Received, Subscriber, World, make_event, subscriber, world
from tests.support.pipeline import RunningRouter, running_router
from workers.delivery.settings import DeliverySettings

# Long enough for a subscriber to be down for a few attempts and back before the schedule ends.
PATIENT = msgspec.structs.replace(FAST, schedule=Schedule((0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3), jitter=0.0))


class Exam(msgspec.Struct):
    key: str
    version: int | None = None
    state: str | None = None


class Body(msgspec.Struct):
    id: str
    type: str
    exam: Exam


def body(received: Received) -> Body:
    return msgspec.json.decode(received.body, type=Body)


def types(sub: Subscriber, path: str) -> list[str]:
    return [body(r).type for r in sub.received.get(path, [])]


@pytest.fixture
async def w(amqp_url: str, database_url: str, topology: Topology, db_schema: str) -> AsyncIterator[World]:
    async with world(amqp_url, database_url, topology, db_schema, PATIENT) as running:
        yield running


@pytest.fixture
async def router(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[RunningRouter]:
    async with running_router(amqp_url, database_url, topology, db_schema) as running:
        yield running


async def send_itep(router: RunningRouter, test_id: str, *statuses: str) -> None:
    """iTEP results webhooks of one test, one after the other, each stored before the next is sent."""
    for n, status in enumerate(statuses, 1):
        data, content_type = samples.itep_urlencoded(samples.itep(status, test_id=test_id))
        await router.publish_raw(samples.envelope(Vendor.ITEP, data, content_type=content_type))
        await router.raw_stored(n)


class Decide:
    """How the subscriber answers: 503 while `up` is not set; then 200, except a 500 once per event
    whose type is in `fail_once`. Keeps every answer, in order."""

    def __init__(self, up: bool = False, fail_once: set[str] | None = None) -> None:
        self.up = asyncio.Event()
        if up:
            self.up.set()
        self.fail_once = fail_once or set()
        self.answers: list[tuple[Body, int]] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        event = msgspec.json.decode(await request.read(), type=Body)
        status = 200
        if not self.up.is_set():
            status = 503
        elif event.type in self.fail_once:
            self.fail_once.discard(event.type)
            status = 500
        self.answers.append((event, status))
        return web.Response(status=status)

    async def delivered(self, count: int) -> list[Body]:
        """The first `count` events answered 2xx, in order."""
        async with asyncio.timeout(15):
            while len(ok := [e for e, status in self.answers if status == 200]) < count:
                await asyncio.sleep(0.02)
        return ok[:count]


async def send_task(amqp_url: str, topology: Topology, body: bytes, **headers: object) -> None:
    """A task on the attempts queue, as a worker (or an older one) publishes it."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers=headers or None),
            routing_key=topology.delivery_attempts_queue,  # type: ignore[arg-type]
        )


async def statuses(w: World, subscription_id: str) -> dict[str, str]:
    rows = await w.pool.fetch(
        "SELECT event_type, status FROM deliveries WHERE subscription_id = $1", uuid.UUID(subscription_id)
    )
    return {row["event_type"]: row["status"] for row in rows}


async def test_a_subscriber_down_then_back_gets_one_exams_events_in_version_order(
    w: World, router: RunningRouter
) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = decide = Decide()
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await send_itep(router, "ORD0001AP", "Finished", "Complete", "Invalidated")
        await sub.wait("/hook", 2)  # the first event failed twice: the others wait behind it
        assert await statuses(w, subscription_id) == {
            "finished": "pending",
            "completed": "waiting",
            "invalidated": "waiting",
        }
        assert set(types(sub, "/hook")) == {"finished"}
        decide.up.set()
        got = await decide.delivered(3)
        assert [(b.type, b.exam.version, b.exam.state) for b in got] == [
            ("finished", 1, "finished"),
            ("completed", 2, "completed"),
            ("invalidated", 3, "invalidated"),
        ]
        # Nothing of the exam was ever sent before the one before it had been delivered.
        assert types(sub, "/hook")[-3:] == ["finished", "completed", "invalidated"]


async def test_latest_sends_only_the_newest_and_the_attempt_log_says_superseded(
    w: World, router: RunningRouter
) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = decide = Decide()
        subscription_id, _ = await w.subscribe(sub.url("/hook"), delivery_order="latest")
        await send_itep(router, "ORD0002AP", "Finished", "Complete", "Invalidated")
        async with asyncio.timeout(10):
            while (await statuses(w, subscription_id)).get("invalidated") not in ("pending",):
                await asyncio.sleep(0.02)
        decide.up.set()
        (got,) = await decide.delivered(1)
        assert (got.type, got.exam.version, got.exam.state) == ("invalidated", 3, "invalidated")
        await w.delivery(subscription_id, "succeeded")
        assert await statuses(w, subscription_id) == {
            "finished": "superseded",
            "completed": "superseded",
            "invalidated": "succeeded",
        }
        notes = await w.pool.fetch(
            "SELECT d.event_type, a.outcome, a.error FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.subscription_id = $1 AND a.outcome = 'superseded'",
            uuid.UUID(subscription_id),
        )
        assert {n["event_type"] for n in notes} == {"finished", "completed"}
        assert all("superseded" in n["error"] for n in notes)
        await asyncio.sleep(0.5)
        assert [e.type for e, status in decide.answers if status == 200] == ["invalidated"]


async def test_a_retried_finished_never_arrives_after_completed(w: World, router: RunningRouter) -> None:
    async with subscriber() as sub:
        sub.behaviours["/hook"] = decide = Decide(up=True, fail_once={"finished"})
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await send_itep(router, "ORD0003AP", "Finished", "Complete")
        got = await decide.delivered(2)
        assert [b.type for b in got] == ["finished", "completed"]
        # completed was sent only once finished was in
        assert [(e.type, status) for e, status in decide.answers] == [
            ("finished", 500),
            ("finished", 200),
            ("completed", 200),
        ]
        await w.delivery(subscription_id, "succeeded")


async def test_an_exam_that_waits_holds_up_no_other_exam(w: World) -> None:
    async with subscriber() as sub:
        stuck = make_event(exam="STUCK")

        async def fail_the_stuck_exam(request: web.Request) -> web.StreamResponse:
            return web.Response(status=500 if request.headers["webhook-id"] == stuck.id else 200)

        sub.behaviours["/hook"] = fail_the_stuck_exam
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await w.publish(stuck)
        await w.publish(make_event(type_="finished", exam="STUCK"))  # waits behind the first
        others = [make_event() for _ in range(5)]
        for event in others:
            await w.publish(event)
        async with asyncio.timeout(10):
            while not {e.id for e in others} <= {
                r.headers["webhook-id"] for r in sub.received.get("/hook", [])
            }:
                await asyncio.sleep(0.02)
        assert await w.pool.fetchval(
            "SELECT status FROM deliveries WHERE subscription_id = $1 AND event_id = $2",
            uuid.UUID(subscription_id),
            uuid.UUID(stuck.id),
        ) in ("pending", "failed")


async def test_an_event_fanned_out_before_the_one_before_it_still_goes_second(w: World) -> None:
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        first, second = (
            make_event(type_="finished", exam="ORDER"),
            make_event(type_="completed", exam="ORDER"),
        )
        first_body = await w.store(first)
        await w.publish(second)  # the first's fan-out has not run yet: the second waits for it
        async with asyncio.timeout(10):
            while (await statuses(w, subscription_id)).get("completed") != "waiting":
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert "/hook" not in sub.received
        await w.results.publish(
            aio_pika.Message(first_body, message_id=first.id), routing_key="itep.finished"
        )
        got = await sub.wait("/hook", 2)
        assert [r.headers["webhook-id"] for r in got] == [first.id, second.id]


async def test_two_copies_of_a_task_make_one_post(w: World) -> None:
    async with subscriber() as sub:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.StreamResponse:
            await release.wait()
            return web.Response()

        sub.behaviours["/hook"] = slow
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        await sub.wait("/hook", 1)
        delivery_id = await w.pool.fetchval(
            "SELECT id::text FROM deliveries WHERE subscription_id = $1", uuid.UUID(subscription_id)
        )
        # A copy of its task (a publish retried after a lost confirm, say) while the attempt is made.
        copy = Attempt(delivery_id=delivery_id, subscription_id=subscription_id, event_id=event.id)
        await send_task(w.settings.amqp_url, w.settings.topology, encode_task(copy))
        await asyncio.sleep(0.5)
        release.set()
        await w.delivery(subscription_id, "succeeded")
        await asyncio.sleep(0.3)
        assert len(sub.received["/hook"]) == 1
        assert len(await w.attempts(uuid.UUID(delivery_id))) == 1


async def test_a_task_written_before_the_upgrade_is_still_delivered(w: World) -> None:
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.store(event)
        delivery_id = uuid.uuid4()
        await w.pool.execute(
            "INSERT INTO deliveries (id, subscription_id, event_id, event_type) VALUES ($1, $2, $3, $4)",
            delivery_id,
            uuid.UUID(subscription_id),
            uuid.UUID(event.id),
            event.type,
        )
        # The v1 task: flags and the body inside, as the previous release wrote it.
        old = msgspec.msgpack.encode(
            {
                "v": 1,
                "delivery_id": str(delivery_id),
                "subscription_id": subscription_id,
                "event_id": event.id,
                "step": 0,
                "not_before": 0.0,
                "body": b"{}",
                "made": 0,
                "guard": False,
            }
        )
        await send_task(w.settings.amqp_url, w.settings.topology, old)
        (got,) = await sub.wait("/hook", 1)
        assert got.headers["webhook-id"] == event.id
        await w.delivery(subscription_id, "succeeded")


async def test_a_redelivered_task_releases_what_its_settled_attempt_left_waiting(w: World) -> None:
    # The worker recorded the first delivery and released the second, then stopped before publishing
    # the second's task: the first's task comes back and publishes it.
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        first, second = make_event(type_="finished", exam="REL"), make_event(type_="completed", exam="REL")
        await w.store(first)
        await w.store(second)
        ids = {}
        for seq, event, status, attempts in ((1, first, "succeeded", 1), (2, second, "pending", 0)):
            ids[event.id] = uuid.uuid4()
            await w.pool.execute(
                "INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, attempts, vendor,"
                " exam_key, exam_seq) VALUES ($1, $2, $3, $4, $5, $6, 'itep', 'REL', $7)",
                ids[event.id],
                uuid.UUID(subscription_id),
                uuid.UUID(event.id),
                event.type,
                status,
                attempts,
                seq,
            )
        task = Attempt(delivery_id=str(ids[first.id]), subscription_id=subscription_id, event_id=first.id)
        await send_task(
            w.settings.amqp_url, w.settings.topology, encode_task(task), **{"x-delivery-count": 1}
        )
        (got,) = await sub.wait("/hook", 1)
        assert got.headers["webhook-id"] == second.id
        await asyncio.sleep(0.3)
        assert len(sub.received["/hook"]) == 1  # the first is not sent again


async def test_a_shutdown_settles_a_post_that_outlasts_the_drain(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async def hanging(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    slow = DeliverySettings(**{**msgspec.structs.asdict(FAST), "timeout": 20.0})
    async with subscriber() as sub:
        sub.behaviours["/hook"] = hanging
        async with world(amqp_url, database_url, topology, db_schema, slow) as w:
            subscription_id, _ = await w.subscribe(sub.url("/hook"))
            await w.publish(make_event())
            await sub.wait("/hook", 1)
            stopped = asyncio.get_running_loop().time()
            # Leaving the block stops the worker (a 2 s drain) while the POST hangs.
        assert asyncio.get_running_loop().time() - stopped < 3.0
    db = await asyncpg.connect(database_url, server_settings={"search_path": db_schema})
    try:
        row = await db.fetchrow(
            "SELECT status, attempts, claimed_at, next_attempt_at FROM deliveries WHERE subscription_id = $1",
            uuid.UUID(subscription_id),
        )
        attempt = await db.fetchrow("SELECT outcome, error FROM delivery_attempts")
    finally:
        await db.close()
    # Recorded as an attempt without an answer, retried on its schedule, and not left claimed.
    assert row["status"] == "pending" and row["attempts"] == 1 and row["claimed_at"] is None
    assert row["next_attempt_at"] is not None
    assert attempt["outcome"] == "retry" and attempt["error"] == "timeout: the worker stopped"


async def test_two_copies_of_a_task_handed_out_together_make_one_post(w: World) -> None:
    async with subscriber() as sub:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.StreamResponse:
            await release.wait()
            return web.Response()

        sub.behaviours["/hook"] = slow
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.store(event)
        delivery_id = uuid.uuid4()
        await w.pool.execute(
            "INSERT INTO deliveries (id, subscription_id, event_id, event_type) VALUES ($1, $2, $3, $4)",
            delivery_id,
            uuid.UUID(subscription_id),
            uuid.UUID(event.id),
            event.type,
        )
        task = encode_task(
            Attempt(delivery_id=str(delivery_id), subscription_id=subscription_id, event_id=event.id)
        )
        for _ in range(2):  # side by side: they reach the worker in one turn, their claims in one group
            await send_task(w.settings.amqp_url, w.settings.topology, task)
        await sub.wait("/hook", 1)
        await asyncio.sleep(0.5)
        release.set()
        await w.delivery(subscription_id, "succeeded")
        await asyncio.sleep(0.3)
        assert len(sub.received["/hook"]) == 1
        assert len(await w.attempts(delivery_id)) == 1


async def test_a_redelivered_task_publishes_what_the_cancel_it_made_released(w: World) -> None:
    # The worker cancelled the first delivery (its event was gone), which released the second; it
    # stopped before publishing the second's task: the first's task comes back and publishes it.
    async with subscriber() as sub:
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        first, second = make_event(type_="finished", exam="CAN"), make_event(type_="completed", exam="CAN")
        await w.store(first)
        await w.store(second)
        ids = {}
        for seq, event, status in ((1, first, "cancelled"), (2, second, "pending")):
            ids[event.id] = uuid.uuid4()
            await w.pool.execute(
                "INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, vendor, exam_key,"
                " exam_seq) VALUES ($1, $2, $3, $4, $5, 'itep', 'CAN', $6)",
                ids[event.id],
                uuid.UUID(subscription_id),
                uuid.UUID(event.id),
                event.type,
                status,
                seq,
            )
        task = Attempt(delivery_id=str(ids[first.id]), subscription_id=subscription_id, event_id=first.id)
        await send_task(
            w.settings.amqp_url, w.settings.topology, encode_task(task), **{"x-delivery-count": 1}
        )
        (got,) = await sub.wait("/hook", 1)
        assert got.headers["webhook-id"] == second.id
