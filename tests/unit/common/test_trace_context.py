"""common/tracing.py without I/O: when it is on, how a context goes into headers and comes back out
of them (as aiormq hands them over: bytes, in any case), that off it carries nothing, which SDK
settings it follows and refuses, and that a collector that never answers cannot hold a shutdown."""

import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from common.env import SettingError


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


@pytest.mark.parametrize("name", ["traceparent", "Traceparent", "TRACEPARENT"])
def test_a_traceparent_is_read_in_any_case(exported: InMemorySpanExporter, name: str) -> None:
    parent = tracing.parent_of({name: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    with tracing.span("ingress", tracing.SERVER, parent=parent):
        pass
    (span,) = exported.get_finished_spans()
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_tracestate_longer_than_w3c_allows_is_dropped_and_the_trace_kept(
    exported: InMemorySpanExporter,
) -> None:
    parent = tracing.parent_of(
        {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=" + "x" * 10_000,
        }
    )
    with tracing.span("ingress", tracing.SERVER, parent=parent) as span:
        assert span is not None
        assert format(span.get_span_context().trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert len(span.get_span_context().trace_state) == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c.example.com:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ],
)
def test_what_resultbus_cannot_export_is_a_bad_setting_not_dropped_spans(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingError, match=named):
        tracing.wanted(env)


def test_the_exporter_setting_turns_it_off_or_to_the_console() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c.example.com:4318"}
    assert tracing.wanted({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is False
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"}) is True
    assert tracing.wanted({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) is True


def test_a_service_name_the_operator_gave_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=exam-bus,deployment.environment=test")
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "service.name=exam-bus"}
    try:
        assert tracing.configure("router", env)
        assert tracing._provider is not None
        assert tracing._provider.resource.attributes["service.name"] == "exam-bus"
        assert tracing._provider.resource.attributes["resultbus.role"] == "router"
    finally:
        tracing.shutdown()
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    try:
        assert tracing.configure("router", {"OTEL_TRACES_EXPORTER": "console"})
        assert tracing._provider is not None
        assert tracing._provider.resource.attributes["service.name"] == "resultbus-router"
    finally:
        tracing.shutdown()


def test_batching_settings_the_sdk_refuses_are_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000")  # larger than its queue (2048)
    with pytest.raises(SettingError, match="tracing"):
        tracing.configure("router", {"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.ENABLED


class _Stuck(SpanExporter):
    """A collector that never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def test_a_collector_that_never_answers_costs_the_shutdown_a_bounded_wait() -> None:
    stuck = _Stuck()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(stuck, schedule_delay_millis=1))
    tracing.install(provider)
    tracing.end(tracing.start("route", tracing.CONSUMER))
    began = time.monotonic()
    tracing.shutdown(timeout=0.5)
    assert time.monotonic() - began < 5  # not the 30 s the export would hold it
    assert not tracing.ENABLED
    stuck.release.set()
