"""Logs never hold personal fields: the pipeline runs over fixtures with JSON logs, and the lines are
searched for the fixtures' emails and names."""

import asyncio
import json
import sys

from schemas.topology import Topology
from subscribers.queues import delivery_queue_names
from tests.support.delivery import FAST
from tests.support.logged_pipeline import EMAIL, NAME
from tests.support.services import scratch_queue_name


async def test_no_log_line_carries_an_email_or_a_name(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    # The pipeline runs in a process of its own: the queues it declares are registered here, so that
    # the topology fixture removes them.
    scratch_queue_name(topology, "results")
    for name in delivery_queue_names(topology, FAST.schedule):
        scratch_queue_name(topology, "", name=name)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.logged_pipeline",
        amqp_url,
        database_url,
        db_schema,
        topology.prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    output = (stdout + stderr).decode()
    assert process.returncode == 0, output[-3000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    # The pieces ran and logged: the router, a rejection, the deliveries, the erasure.
    assert {"webhook routed", "delivery attempt", "erasure requested", "erasure completed"} <= events, events
    assert len(lines) > 10
    for value in (EMAIL, NAME, EMAIL.split("@")[0], "grace.hopper%40example.com"):
        leaking = [line for line in output.splitlines() if value.lower() in line.lower()]
        assert leaking == [], leaking[:3]
