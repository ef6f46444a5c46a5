"""OpenTelemetry tracing: one trace from a vendor's POST to every subscriber's answer. Off by default.

    ingress   SERVER   `POST /hooks/{source}`   (the vendor's W3C traceparent, if sent, is its parent)
    router    CONSUMER `route`                   parent: the raw envelope's AMQP headers
    delivery  CONSUMER `fan-out`, `attempts`     parent: the result event's, then the task's headers
              CLIENT   `POST` (a webhook), `PUT …/results/{sourcedId}` … (a gradebook)

The context travels as `traceparent` / `tracestate` in the AMQP headers of the raw envelope, the result
event and each delivery task, so a consumer of a result queue can continue the trace too.

It is on when the SDK's own exporter settings say where to send: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP/protobuf; the exporter reads its headers,
timeout and compression from the usual `OTEL_EXPORTER_OTLP_*` variables), or `OTEL_TRACES_EXPORTER`
is `console`; never with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. A protocol or
exporter we do not ship (gRPC, Zipkin) is a bad setting: the process says so and does not start,
rather than drop every span. `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`)
names the process, by default `resultbus-<role>`; `OTEL_TRACES_SAMPLER` samples as the SDK documents.
Off, the hot paths test `ENABLED` and nothing else.
"""

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.env import SettingError

log = structlog.get_logger("tracing")

ENABLED = False
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: TracerProvider | None = None
_propagator = TraceContextTextMapPropagator()

SERVER, CLIENT, CONSUMER, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.CONSUMER, SpanKind.INTERNAL
__all__ = [
    "Span",
    "Status",
    "StatusCode",
]  # re-exported: callers mark a span failed without importing the SDK
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_EXPORTERS = frozenset({"", "otlp", "console", "none"})
_SHUTDOWN_SECONDS = 3.0  # what exporting the last spans may add to a shutdown
_TRACESTATE_MAX = 512  # W3C Trace Context: a vendor's longer tracestate may be dropped

# The SDK warns, per request and quoting it, about a malformed header a caller sent: not ours to log.
logging.getLogger("opentelemetry.trace.span").setLevel(logging.ERROR)
logging.getLogger("opentelemetry.trace.propagation.tracecontext").setLevel(logging.ERROR)


def _setting(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported; a SettingError for what we cannot do."""
    if _setting(env, "OTEL_SDK_DISABLED").lower() == "true":
        return False
    exporter = _setting(env, "OTEL_TRACES_EXPORTER").lower()
    if exporter not in _EXPORTERS:
        raise SettingError(
            f"OTEL_TRACES_EXPORTER={exporter!r}: resultbus exports otlp (HTTP), console or none"
        )
    for name in _PROTOCOLS:
        if (protocol := _setting(env, name)) and protocol != "http/protobuf":
            raise SettingError(f"{name}={protocol!r}: resultbus exports OTLP over http/protobuf only")
    if exporter == "none":
        return False
    return exporter == "console" or any(_setting(env, name) for name in _ENDPOINTS)


def configure(role: str, env: Mapping[str, str]) -> bool:
    """Turns tracing on for this process if the environment asks for it; returns whether it did.
    The exporter, its batching and the sampler read their own settings from the process environment,
    as the SDK's users expect; one the SDK refuses is a SettingError."""
    if not wanted(env):
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    attributes: dict[str, str] = {"resultbus.role": role}
    # The SDK reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself: ours is only the default.
    if not _setting(env, "OTEL_SERVICE_NAME") and "service.name=" not in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes[SERVICE_NAME] = f"resultbus-{role}"
    exporter: SpanExporter
    if _setting(env, "OTEL_TRACES_EXPORTER").lower() == "console":
        exporter, where = ConsoleSpanExporter(), "stdout"
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        where = next(_setting(env, n) for n in _ENDPOINTS if _setting(env, n))
    try:
        provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        # Batched and exported from the SDK's own thread: a request never waits for the collector.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    except ValueError as error:  # OTEL_BSP_* out of range, say
        raise SettingError(f"tracing: {error}") from None
    install(provider)
    service = provider.resource.attributes.get(SERVICE_NAME)
    log.info("tracing on", exporter=where, service_name=service)
    return True


def install(provider: TracerProvider) -> None:
    """Spans from now on go to `provider` (tests give one with the SDK's in-memory exporter)."""
    global ENABLED, _tracer, _provider
    _provider, _tracer, ENABLED = provider, provider.get_tracer("resultbus"), True


def shutdown(timeout: float = _SHUTDOWN_SECONDS) -> None:
    """Exports what is still batched and turns tracing off; at the process's end. A collector that
    does not answer costs at most `timeout` seconds of the shutdown (and the spans it did not take)."""
    global ENABLED, _tracer, _provider
    provider, _provider = _provider, None
    ENABLED, _tracer = False, trace.NoOpTracer()
    if provider is None:
        return
    exporting = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    exporting.start()
    exporting.join(timeout)
    if exporting.is_alive():
        log.warning("tracing: the last spans were not exported in time", timeout_seconds=timeout)


def parent_of(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a message or request says it continues (`traceparent`, any case), or None."""
    if not ENABLED or not headers:
        return None
    carrier: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name == "traceparent" or (name == "tracestate" and len(value) <= _TRACESTATE_MAX):
            carrier[name] = _text(value)
    return _propagator.extract(carrier) if "traceparent" in carrier else None


def _text(value: Any) -> str:
    # AMQP headers arrive as bytes from aiormq, as str from aio-pika's wrapper.
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def headers(span: Span | None = None) -> dict[str, Any] | None:
    """AMQP headers carrying the context of `span` (else the current one); None when off or when
    there is nothing to carry."""
    if not ENABLED:
        return None
    carried: dict[str, Any] = {}
    _propagator.inject(carried, context=trace.set_span_in_context(span) if span is not None else None)
    return carried or None


def start(
    name: str,
    kind: SpanKind,
    *,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Span:
    """A span that is not made current: for work that does not run in one block (the router's
    batches). End it with `end`."""
    return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes)


def end(
    span: Span, *, error: str | None = None, attributes: Mapping[str, str | int | float | bool] | None = None
) -> None:
    if attributes:
        span.set_attributes(attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def answered(span: Span | None, status: int | None, error: str | None = None) -> None:
    """An HTTP call's answer on its span: the status code, and `error` as the span's failure."""
    if span is None:
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[:200]))


@contextlib.contextmanager
def span(
    name: str,
    kind: SpanKind,
    *,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span | None]:
    """A span current for the block (what is published inside it carries it); None when off. An
    exception escaping the block is recorded on it."""
    if not ENABLED:
        yield None
        return
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as current:
        yield current


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """A block with no current span: what it publishes starts no child of the work around it (a
    delivery released by another exam event's attempt starts a trace of its own, rather than
    appear in the trace of the event that released it)."""
    if not ENABLED:
        yield
        return
    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)
