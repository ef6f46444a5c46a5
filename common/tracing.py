"""OpenTelemetry tracing: one trace from a vendor's POST to every subscriber's answer. Off by default.

    ingress   SERVER   `POST /hooks/{source}`   (the vendor's W3C traceparent, if sent, is its parent)
    router    CONSUMER `route`                   parent: the raw envelope's AMQP headers
    delivery  CONSUMER `fan-out`, `attempt`      parent: the result event's, then the task's headers
              CLIENT   `POST` (a webhook), `PUT /results/{id}` … (a gradebook)

The context travels as `traceparent` / `tracestate` in the AMQP headers of the raw envelope, the result
event and each delivery task, so a consumer of a result queue can continue the trace too.

It is on when the SDK's own exporter settings say where to send: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP/protobuf; the exporter reads its headers,
timeout and compression from the usual `OTEL_EXPORTER_OTLP_*` variables), unless `OTEL_SDK_DISABLED`
is true. `OTEL_SERVICE_NAME` names the process (default `resultbus-<role>`), `OTEL_TRACES_SAMPLER`
samples as the SDK documents. Off, every entry point here costs one test of `ENABLED`.
"""

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINTS)


def configure(role: str, env: Mapping[str, str]) -> bool:
    """Turns tracing on for this process if the environment asks for it; returns whether it did.
    The exporter and sampler read their own settings from the process environment, as the SDK's
    users expect."""
    if not wanted(env):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME", "").strip() or f"resultbus-{role}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name, "resultbus.role": role}))
    # Batched and exported from the SDK's own thread: a request never waits for the collector.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    endpoint = next(env[n].strip() for n in _ENDPOINTS if env.get(n, "").strip())
    log.info("tracing on", exporter="otlp/http", endpoint=endpoint, service_name=name)
    return True


def install(provider: TracerProvider) -> None:
    """Spans from now on go to `provider` (tests give one with the SDK's in-memory exporter)."""
    global ENABLED, _tracer, _provider
    _provider, _tracer, ENABLED = provider, provider.get_tracer("resultbus"), True


def shutdown() -> None:
    """Exports what is still batched and turns tracing off; at the process's end."""
    global ENABLED, _tracer, _provider
    provider, _provider = _provider, None
    ENABLED, _tracer = False, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


def parent_of(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a message or request says it continues (`traceparent`), or None."""
    if not headers or "traceparent" not in headers:
        return None
    carrier = {k: _text(v) for k, v in headers.items() if k in ("traceparent", "tracestate")}
    return _propagator.extract(carrier)


def _text(value: Any) -> str:
    # AMQP headers arrive as bytes from aiormq, as str from aio-pika's wrapper.
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def inject(headers: MutableMapping[str, Any], span: Span | None = None) -> MutableMapping[str, Any]:
    """Writes the context of `span` (else the current one) into `headers`, and returns them."""
    ctx = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(headers, context=ctx)
    return headers


def headers(span: Span | None = None) -> dict[str, Any] | None:
    """AMQP headers carrying the context of `span` (else the current one); None when off or when
    there is nothing to carry."""
    if not ENABLED:
        return None
    carried: dict[str, Any] = {}
    inject(carried, span)
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


def detached() -> contextlib.AbstractContextManager[object]:
    """A block with no current span: what it publishes starts no child of the work around it (a
    delivery released by another exam event's attempt belongs to its own event's trace)."""
    if not ENABLED:
        return contextlib.nullcontext()
    return _attached(otel_context.Context())


@contextlib.contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[object]:
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)
