"""One trace from a vendor's POST to a subscriber's answer, through the real processes: an ingress,
a router and a delivery worker (`python -m …`), each exporting OTLP over HTTP to a collector on
loopback, because `OTEL_EXPORTER_OTLP_ENDPOINT` says so, as the SDK's users set it."""

import asyncio
import contextlib
import gzip
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devkit import samples
from schemas.topology import Topology
from tests.support.delivery import World, subscriber
from tests.support.delivery_process import delivery_process, stop
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.real_ingress import real_ingress
from tests.support.services import AMQP_URL, DATABASE_URL

VENDOR_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VENDOR_SPAN = "00f067aa0ba902b7"


@dataclass(frozen=True)
class Exported:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object]


@dataclass
class Collector:
    endpoint: str
    spans: list[Exported] = field(default_factory=list)

    async def trace(self, trace_id: str, names: set[str], timeout: float = 20.0) -> dict[str, Exported]:
        """The spans of `trace_id` by name, once every one of `names` has arrived."""
        async with asyncio.timeout(timeout):
            while not names <= {s.name for s in self.spans if s.trace_id == trace_id}:
                await asyncio.sleep(0.05)
        return {s.name: s for s in self.spans if s.trace_id == trace_id}


@contextlib.asynccontextmanager
async def otlp_collector() -> AsyncIterator[Collector]:
    """An OTLP/HTTP trace receiver (protobuf, as the SDK's exporter sends)."""
    holder: list[Collector] = []

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes: dict[str, object] = {}
                    for a in span.attributes:
                        value = a.value
                        attributes[a.key] = value.string_value or value.int_value
                    holder[0].spans.append(
                        Exported(
                            resource["service.name"],
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Collector(str(server.make_url("")).rstrip("/")))
    try:
        yield holder[0]
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def router_process(topology: Topology, schema: str, **env: str) -> AsyncIterator[None]:
    metrics = free_port()
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("RESULTBUS_", "OTEL_"))}
    process_env.update(
        RESULTBUS_AMQP_URL=AMQP_URL,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=schema,
        RESULTBUS_METRICS_PORT=str(metrics),
        RESULTBUS_LOG_LEVEL="warning",
        **env,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "router", env=process_env, cwd=ROOT
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                assert process.returncode is None, "the router exited"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{metrics}/readyz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    async with otlp_collector() as running:
        yield running


def otel(collector: Collector) -> dict[str, str]:
    # A short batch delay: the test waits for spans, not for the SDK's default 5 s.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}


async def test_one_trace_from_the_vendors_post_to_the_subscribers_answer(
    delivery_world: World,
    collector: Collector,
    topology: Topology,
    db_schema: str,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    async with (
        subscriber() as sub,
        real_ingress(amqp_url, topology, tmp_path, **otel(collector)) as ingress,
        router_process(topology, db_schema, **otel(collector)),
    ):
        await delivery_world.subscribe(sub.url("/hook"))
        delivery = await delivery_process(topology, db_schema, **otel(collector))
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{ingress.port}/hooks/synap-main",
                    data=json.dumps(samples.synap_released()),
                    headers={
                        "Content-Type": "application/json",
                        "traceparent": f"00-{VENDOR_TRACE}-{VENDOR_SPAN}-01",
                    },
                ) as response,
            ):
                assert response.status == 200, await response.text()
                webhook_id = (await response.json())["id"]
            (received,) = await sub.wait("/hook", 1, timeout=20)
            spans = await collector.trace(
                VENDOR_TRACE, {"POST /hooks/{source}", "route", "fan-out", "attempts", "POST"}
            )
        finally:
            assert await stop(delivery) == 0

    post, route, fanout, attempt, call = (
        spans[n] for n in ("POST /hooks/{source}", "route", "fan-out", "attempts", "POST")
    )
    # Each a child of the one before, across three processes and two hops through the broker.
    assert post.parent_id == VENDOR_SPAN
    assert route.parent_id == post.span_id
    assert fanout.parent_id == route.span_id
    assert attempt.parent_id == fanout.span_id
    assert call.parent_id == attempt.span_id
    assert (post.service, route.service, fanout.service, call.service) == (
        "resultbus-ingress",
        "resultbus-router",
        "resultbus-delivery",
        "resultbus-delivery",
    )
    assert post.attributes["resultbus.webhook_id"] == webhook_id
    assert post.attributes["http.response.status_code"] == 200
    assert route.attributes["resultbus.outcome"] == "stored"
    assert call.attributes["http.response.status_code"] == 200
    # The subscriber can continue it: the POST it got carries the attempt's call as its parent.
    assert received.headers["traceparent"] == f"00-{VENDOR_TRACE}-{call.span_id}-01"


async def test_a_protocol_resultbus_does_not_export_stops_the_start_in_one_line(
    topology: Topology, db_schema: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESULTBUS_", "OTEL_"))}
    env.update(
        RESULTBUS_AMQP_URL=AMQP_URL,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=db_schema,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", "router", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode().strip().splitlines()[-1] == (
        "router: bad setting: OTEL_EXPORTER_OTLP_PROTOCOL='grpc': resultbus exports OTLP over http/protobuf only"
    )
