"""docs/example_consumer.py as a downstream developer runs it: against the real broker, under a
prefix of its own (RESULTBUS_AMQP_PREFIX, as resultbus reads it), it says what it is bound to and
that it waits, prints the event published and drops a stale one by its exam's version; it needs
nothing from this repository."""

import ast
import asyncio
import os
import sys

import aio_pika
import msgspec

from schemas.event import ResultEvent, Status, encode_event
from schemas.topology import Topology
from tests.support.delivery import make_event
from tests.support.paths import ROOT
from tests.support.services import AMQP_URL

SCRIPT = ROOT / "docs" / "example_consumer.py"


def placed(event: ResultEvent, *, version: int, state: Status) -> ResultEvent:
    """The event as a router publishes it: with its exam's position."""
    assert event.exam is not None
    return msgspec.structs.replace(
        event, exam=msgspec.structs.replace(event.exam, version=version, state=state)
    )


def test_it_imports_only_aio_pika_msgspec_and_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(SCRIPT.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - sys.stdlib_module_names == {"aio_pika", "msgspec"}


async def test_it_follows_the_prefix_says_what_it_waits_for_and_gets_the_event(topology: Topology) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(RESULTBUS_AMQP_URL=AMQP_URL, RESULTBUS_AMQP_PREFIX=topology.prefix)
    # Run from elsewhere than the clone: nothing of the repository is on its path.
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, "-I", str(SCRIPT), "--bind", "*.completed", "--bind", "*.finished", "--count", "2",
        env=env, cwd="/", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert consumer.stdout is not None and consumer.stderr is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not said or "waiting for events" not in said[-1]:
                line = (await consumer.stderr.readline()).decode()
                assert line, f"the consumer stopped: {said}"
                said.append(line)
        # Nothing published under this prefix yet: it says so, and binds to the prefix's exchange.
        assert f"exchange {topology.results_exchange} did not exist" in said[0]
        assert f"bound to {topology.results_exchange} on amqp://" in said[-1] and "*.completed" in said[-1]
        # The exam's completion, then a Finished that a redelivery brought late: stale, dropped.
        event = placed(make_event(exam="T1"), version=2, state=Status.COMPLETED)
        late = placed(make_event(type_="finished", exam="T1"), version=1, state=Status.FINISHED)
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.results_exchange)
            for one, key in ((event, "itep.completed"), (late, "itep.finished")):
                await exchange.publish(
                    aio_pika.Message(encode_event(one), message_id=one.id, content_type="application/json"),
                    routing_key=key,
                )
        out, err = await asyncio.wait_for(consumer.communicate(), 30)
    finally:
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
    assert consumer.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        f"itep.completed {event.id} exam=T1 version=2 state=completed status=completed"
    ]
    assert f"{late.id} stale: exam T1 is at version 2, this event at 1" in err.decode()
