"""Spans recorded with the SDK's in-memory exporter in this process, on the real broker, database and
HTTP servers: a router batch keeps each webhook's trace, a gradebook write is a span with a client
span per call."""

from datetime import UTC, datetime

import aio_pika
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from devkit import samples
from devkit.oneroster import OneRosterProvider
from gradebook.crosswalk import Lookup, Row
from gradebook.plan import OneRosterWrite, plan
from gradebook.send import Sender
from schemas.envelope import ENVELOPE_CONTENT_TYPE, encode_envelope
from schemas.event import decode_event
from schemas.topology import Topology, raw_routing_key
from schemas.vendor import Vendor
from subscribers.poster import Poster, subscriber_session
from tests.support.gradebook_world import SECRET_ENV, oneroster_destination, sample_synap
from tests.support.pipeline import running_router


async def test_a_batch_of_webhooks_keeps_each_ones_trace(
    exported: InMemorySpanExporter, amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    """The router takes webhooks in batches: each event carries the trace of its own webhook."""
    traces = [f"{i:032x}" for i in range(1, 6)]
    async with running_router(amqp_url, database_url, topology, db_schema, batch_wait=0.05) as router:
        for n, trace_id in enumerate(traces):
            envelope = samples.envelope(Vendor.SYNAP, samples.as_json(samples.synap_released(f"att-{n}")))
            await router.raw_exchange.publish(
                aio_pika.Message(
                    encode_envelope(envelope),
                    message_id=envelope.id,
                    content_type=ENVELOPE_CONTENT_TYPE,
                    headers={"traceparent": f"00-{trace_id}-{n + 1:016x}-01"},
                ),
                routing_key=raw_routing_key(envelope.vendor, envelope.source),
            )
        await router.events(len(traces))
    routes = {
        format(s.context.trace_id, "032x"): s for s in exported.get_finished_spans() if s.name == "route"
    }
    assert set(routes) == set(traces)
    for message in router.received:
        event = decode_event(message.body)
        carried = message.headers["traceparent"]
        assert isinstance(carried, str)
        trace_id, span_id = carried.split("-")[1:3]
        route = routes[trace_id]
        assert route.attributes is not None and route.attributes["resultbus.webhook_id"] == event.webhook_id
        assert span_id == format(route.context.span_id, "016x")


async def test_a_gradebook_write_is_a_span_with_a_call_per_request(exported: InMemorySpanExporter) -> None:
    provider = OneRosterProvider(clients={"resultbus": "s3cret-for-tests-only"})
    await provider.start()
    try:
        async with subscriber_session(allow_private=True, limit=4) as session:
            sender = Sender(
                session,
                timeout=5.0,
                max_response_bytes=4096,
                allow_private=True,
                env={SECRET_ENV: "s3cret-for-tests-only"},
            )
            where = oneroster_destination(provider.base_url, provider.token_url)
            planned = plan(
                sample_synap(), where, Lookup(row=Row(student="S-1", override=True)), now=datetime.now(UTC)
            )
            assert isinstance(planned, OneRosterWrite)
            with tracing.span("attempts", tracing.CONSUMER):
                assert (await sender.send(where, planned)).ok
    finally:
        await provider.close()
    spans = {s.name: s for s in exported.get_finished_spans()}
    write = spans["gradebook write (oneroster)"]
    calls = [s for s in exported.get_finished_spans() if s.kind is tracing.CLIENT]
    assert {s.name for s in calls} >= {"PUT /ims/oneroster/gradebook/v1p2/results/{sourcedId}"}
    assert all(s.parent is not None and s.parent.span_id == write.context.span_id for s in calls)
    assert write.parent is not None and write.parent.span_id == spans["attempts"].context.span_id


async def test_a_host_that_cannot_be_decoded_is_the_attempts_outcome_traced_or_not(
    exported: InMemorySpanExporter,
) -> None:
    for on in (True, False):
        if not on:
            tracing.shutdown()
        async with subscriber_session(allow_private=True, limit=4) as session:
            poster = Poster(session, timeout=2.0, max_response_bytes=1024, allow_private=True)
            outcome = await poster.post("http://xn--a.example.com/hook", b"{}", {})
        assert not outcome.ok and outcome.error, on
    (span,) = exported.get_finished_spans()
    assert span.name == "POST" and span.status.status_code is tracing.StatusCode.ERROR
