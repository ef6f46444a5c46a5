"""The delivery worker's bugs of issue 9, proven through a real worker, the real broker and database:
the broker taken away between an attempt's commit and what must be published after it (through a
cuttable proxy, so the shared RabbitMQ is never touched), and messages that cannot be decoded."""

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import msgspec
from aiohttp import web

from common.broker import declare_results
from common.consumer import QUEUE, REASON
from common.db import create_pool
from common.service import running
from common.settings import ProcessSettings, WorkerSettings
from devkit.proxy import TcpProxy
from schemas.delivery import DELIVERY_FAILED_KEY
from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from subscribers.schedule import Schedule
from tests.support.delivery import FAST, Behaviour, World, make_event, subscriber
from tests.support.paths import ROOT
from tests.support.services import DATABASE_URL, scratch_queue_name
from workers.delivery.attempts import _OPERATIONAL_IDS
from workers.delivery.run import start_delivery
from workers.delivery.settings import DeliverySettings
from workers.migrate import migrate

RESULTBUS = Path(sys.executable).parent / "resultbus"


@dataclass
class CutWorld:
    world: World
    proxy: TcpProxy
    channel: aio_pika.abc.AbstractChannel  # direct, not proxied: the test's own view of the broker


@contextlib.asynccontextmanager
async def cut_world(
    amqp_url: str, topology: Topology, schema: str, delivery: DeliverySettings = FAST
) -> AsyncIterator[CutWorld]:
    """A delivery worker whose broker connection runs through a proxy the test can cut; the
    database, the test's publisher and its probe queue are connected directly."""
    target = urlsplit(amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    port = await proxy.start()
    proxied = f"amqp://guest:guest@127.0.0.1:{port}/?reconnect_interval=0.3"
    settings = WorkerSettings(
        amqp_url=proxied, topology=topology, database_url=DATABASE_URL, database_schema=schema
    )
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    connection = await aio_pika.connect(amqp_url)
    probe_name = scratch_queue_name(topology, "operational")
    for name in delivery_queue_names(topology, delivery.schedule):
        scratch_queue_name(topology, "delivery", name=name)  # deleted after the test, not before
    try:
        channel = await connection.channel(publisher_confirms=True)
        results = await declare_results(channel, topology)
        probe = await channel.declare_queue(probe_name, durable=False)
        await probe.bind(results, routing_key="resultbus.#")
        async with running(
            "delivery", (settings, delivery), start_delivery, ProcessSettings(shutdown_timeout=2.0)
        ):
            yield CutWorld(World(settings, delivery, pool, results, probe), proxy, channel)
    finally:
        await connection.close()
        await pool.close()
        await proxy.close()


def cut_while_answering(proxy: TcpProxy, status: int, *, on_call: int, otherwise: int = 500) -> Behaviour:
    """A subscriber behaviour: on its `on_call`th call the broker link is cut just before the answer
    (so the worker commits the attempt, then finds no broker to publish to), restored 0.5 s later;
    every other call is answered `otherwise`."""
    calls = 0

    async def behaviour(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == on_call:
            proxy.cut()
            asyncio.get_running_loop().call_later(0.5, proxy.restore)
            return web.Response(status=status)
        return web.Response(status=otherwise)

    return behaviour


async def test_delivery_failed_event_survives_a_broker_cut_between_commit_and_publish(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    # Guards the fix in attempts.py `_follow_up`: a redelivered task whose attempt is already made
    # publishes the `delivery.failed` event again (before it, the early return lost the event).
    async with cut_world(amqp_url, topology, db_schema) as cw, subscriber() as sub:
        w = cw.world
        sub.behaviours["/hook"] = cut_while_answering(cw.proxy, 500, on_call=FAST.schedule.attempts)
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        event = make_event()
        await w.publish(event)
        row = await w.delivery(subscription_id, "failed", timeout=15)
        message = await w.operational_event(timeout=20)
        stable_id = str(uuid.uuid5(_OPERATIONAL_IDS, f"delivery.failed:{row['id']}"))
        assert message.routing_key == DELIVERY_FAILED_KEY
        assert message.message_id == stable_id
        news = msgspec.json.decode(message.body)
        assert news["id"] == stable_id
        assert news["delivery_id"] == str(row["id"]) and news["event_id"] == event.id
        assert news["attempts"] == 3 and news["last_status"] == 500
        assert len(sub.received["/hook"]) == 3  # the final attempt was not made twice
        # Any further copy is the same event (a consumer recognises it by its id).
        await asyncio.sleep(0.5)
        while (again := await w.operational.get(fail=False)) is not None:
            await again.ack()
            assert again.message_id == stable_id


SLOW_RETRY = DeliverySettings(
    schedule=Schedule((0, 3.0, 3.0), jitter=0.0, park=0.05),
    timeout=1.0,
    per_endpoint=2,
    allow_private=True,
)


async def test_retry_after_a_broker_cut_keeps_its_schedule(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    # Guards the fix in attempts.py `_handle`/`_follow_up`: the redelivered task of an attempt
    # already made is not attempted again at once but re-published for its stored next_attempt_at.
    async with cut_world(amqp_url, topology, db_schema, SLOW_RETRY) as cw, subscriber() as sub:
        w = cw.world
        sub.behaviours["/hook"] = cut_while_answering(cw.proxy, 500, on_call=1, otherwise=200)
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        await w.publish(make_event())
        first, second = await sub.wait("/hook", 2, timeout=20)
        assert second.at - first.at >= 2.9, f"second attempt {second.at - first.at:.2f}s after the first"
        row = await w.delivery(subscription_id, "succeeded", timeout=5)
        attempts = await w.attempts(row["id"])
        assert [a["outcome"] for a in attempts] == ["retry", "succeeded"]


async def dead_letters(
    channel: aio_pika.abc.AbstractChannel, topology: Topology, count: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    dead = await channel.declare_queue(
        topology.delivery_dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    found: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            message = await dead.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            found.append(message)
    return found


def header(message: aio_pika.abc.AbstractIncomingMessage, name: str) -> str:
    value = (message.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else str(value)


GARBAGE_EVENT = b'{"id": "0b5f6c2e-6a41-4f39-9d8e-2a7c1e5b9f10", "vendor": "itep", "source": "s-\xff\xfe", "type": "completed"}'
GARBAGE_TASK = b"\xc1\x00 not msgpack"


async def resultbus(topology: Topology, schema: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
    )
    process = await asyncio.create_subprocess_exec(
        str(RESULTBUS), *args, env=env, cwd=ROOT, stdout=-1, stderr=-1
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_undecodable_delivery_messages_are_dead_lettered_then_replayable(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    # Guards the fix in fanout.py and attempts.py: a message that cannot be decoded is rejected to
    # the delivery dead-letter queue with its reason and queue (before it, acked and dropped).
    async with cut_world(amqp_url, topology, db_schema) as cw, subscriber() as sub:
        w, channel = cw.world, cw.channel
        subscription_id, _ = await w.subscribe(sub.url("/hook"))
        publish = channel.default_exchange.publish
        await publish(aio_pika.Message(GARBAGE_EVENT, message_id="bad-event"), topology.deliveries_queue)
        await publish(aio_pika.Message(GARBAGE_TASK, message_id="bad-task"), topology.delivery_attempts_queue)
        found = {m.message_id: m for m in await dead_letters(channel, topology, 2)}
        event, task = found["bad-event"], found["bad-task"]
        assert event.body == GARBAGE_EVENT and task.body == GARBAGE_TASK
        assert header(event, QUEUE) == topology.deliveries_queue
        assert header(event, REASON).startswith("undeliverable event: ")
        assert "utf-8" in header(event, REASON).lower()
        assert header(task, QUEUE) == topology.delivery_attempts_queue
        assert header(task, REASON).startswith("unreadable delivery task: ")
        for message in (event, task):
            await message.nack(requeue=True)  # left for the operator commands below

        # The worker lives on: a valid event is delivered.
        await w.publish(make_event())
        await sub.wait("/hook", 1)
        await w.delivery(subscription_id, "succeeded")

    # The worker is gone (its queues with it, but for the dead-letter queue): an operator looks, then
    # puts the messages back in the queues they died in.
    code, out, err = await resultbus(topology, db_schema, "inspect", "delivery-dead")
    assert code == 0, err
    assert out.splitlines()[0] == f"2 messages in {topology.delivery_dead_queue}"
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines()[1:]}
    assert "reason=undeliverable event: " in lines["bad-event"]
    assert "reason=unreadable delivery task: " in lines["bad-task"]

    code, out, err = await resultbus(topology, db_schema, "replay", "delivery-dead")
    assert code == 0, err
    assert "replayed 2 dead-lettered delivery messages" in out
    for queue_name, message_id, body in (
        (topology.deliveries_queue, "bad-event", GARBAGE_EVENT),
        (topology.delivery_attempts_queue, "bad-task", GARBAGE_TASK),
    ):
        queue = await channel_of(amqp_url, queue_name)
        assert queue == [(message_id, body)]


async def channel_of(amqp_url: str, queue_name: str) -> list[tuple[str | None, bytes]]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        got = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append((message.message_id, message.body))
        return got


async def test_an_event_the_database_would_refuse_fails_alone_not_the_events_fanned_out_with_it(
    amqp_url: str, topology: Topology, db_schema: str
) -> None:
    # The events in hand are stored in one statement (fanout.py): one that PostgreSQL would refuse
    # (an id that is no UUID, a NUL in a text) is rejected before it joins them (schemas/event.py).
    async with cut_world(amqp_url, topology, db_schema) as cw, subscriber() as sub:
        w, channel = cw.world, cw.channel
        await w.subscribe(sub.url("/hook"))
        good = [make_event() for _ in range(6)]
        bodies = [await w.store(event) for event in good]
        refused = {
            "no-uuid": msgspec.json.encode(
                {"id": "not-a-uuid", "vendor": "itep", "source": "s", "type": "completed"}
            ),
            "nul": msgspec.json.encode(
                {
                    "id": str(uuid.uuid4()),
                    "vendor": "itep",
                    "source": "s",
                    "type": "completed",
                    "exam": {"key": "A\u0000B"},
                }
            ),
        }
        messages = [aio_pika.Message(b, message_id=e.id) for e, b in zip(good, bodies, strict=True)]
        messages[3:3] = [aio_pika.Message(body, message_id=name) for name, body in refused.items()]
        await asyncio.gather(
            *(channel.default_exchange.publish(m, topology.deliveries_queue) for m in messages)
        )
        await sub.wait("/hook", len(good))
        dead = {m.message_id: m for m in await dead_letters(channel, topology, 2)}
        assert set(dead) == set(refused)
        assert "UUID" in header(dead["no-uuid"], REASON)
        assert "$.exam.key" in header(dead["nul"], REASON)
        assert all(header(m, REASON).startswith("undeliverable event: ") for m in dead.values())
