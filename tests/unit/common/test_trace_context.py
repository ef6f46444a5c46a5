"""common/tracing.py without I/O: when it is on, how a context goes into headers and comes back out
of them (as aiormq hands them over: bytes), and that off it carries nothing."""

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example.com:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector.example.com:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example.com:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
    ],
)
def test_tracing_is_on_only_where_the_sdks_settings_say_where_to_send(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_off_nothing_is_carried_and_blocks_run_as_they_are() -> None:
    assert not tracing.ENABLED
    assert tracing.headers() is None
    with tracing.span("work", tracing.INTERNAL) as span, tracing.detached():
        assert span is None


def test_a_context_goes_into_amqp_headers_and_comes_back_as_the_parent(
    exported: InMemorySpanExporter,
) -> None:
    with tracing.span("ingress", tracing.SERVER) as sent:
        assert sent is not None
        carried = tracing.headers()
    assert carried is not None and set(carried) == {"traceparent"}
    # aiormq hands header values over as bytes
    as_received = {k: v.encode() for k, v in carried.items()} | {"x-other": b"1"}
    with tracing.span("router", tracing.CONSUMER, parent=tracing.parent_of(as_received)):
        pass
    ingress, router = exported.get_finished_spans()
    assert router.parent is not None and router.parent.span_id == ingress.context.span_id
    assert router.context.trace_id == ingress.context.trace_id


def test_a_vendors_traceparent_is_honoured_and_a_broken_one_starts_a_new_trace(
    exported: InMemorySpanExporter,
) -> None:
    vendor = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.span("ingress", tracing.SERVER, parent=tracing.parent_of({"traceparent": vendor})):
        pass
    with tracing.span("ingress", tracing.SERVER, parent=tracing.parent_of({"traceparent": "00-zz-yy-01"})):
        pass
    with tracing.span("ingress", tracing.SERVER, parent=tracing.parent_of({})):
        pass
    honoured, broken, none = exported.get_finished_spans()
    assert format(honoured.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert honoured.parent is not None and format(honoured.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert broken.parent is None and none.parent is None


def test_what_is_published_detached_starts_no_child(exported: InMemorySpanExporter) -> None:
    with tracing.span("attempt", tracing.CONSUMER):
        inside = tracing.headers()
        with tracing.detached():
            released = tracing.headers()
    assert inside is not None and released is None


def test_a_span_ended_with_an_error_says_so(exported: InMemorySpanExporter) -> None:
    span = tracing.start("route", tracing.CONSUMER)
    tracing.end(span, error="returned: broker gone", attributes={"resultbus.outcome": "returned"})
    (finished,) = exported.get_finished_spans()
    assert finished.status.status_code is tracing.StatusCode.ERROR
    assert finished.status.description == "returned: broker gone"
    assert finished.attributes == {"resultbus.outcome": "returned"}


def test_shutdown_turns_it_off(exported: InMemorySpanExporter) -> None:
    tracing.shutdown()
    assert not tracing.ENABLED and tracing.headers() is None
