"""The ingress's span per webhook call (common/tracing.py), installed only when tracing is on: off,
the request path is exactly what it is without it."""

from aiohttp import web
from aiohttp.typedefs import Handler

from common import logs, tracing

# What the handler bound for its log line, written on the span too.
_ATTRIBUTES = (
    ("webhook_id", "resultbus.webhook_id"),
    ("source", "resultbus.source"),
    ("vendor", "resultbus.vendor"),
)


@web.middleware
async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, so it sees the answer the error middleware made of whatever was raised. The span is
    current while the handler runs: the envelope it publishes carries it to the router. Probes
    (/healthz, /readyz) are not traced: a trace every few seconds per pod says nothing."""
    if not request.path.startswith("/hooks/"):
        return await handler(request)
    with tracing.span(
        f"{request.method} /hooks/{{source}}",
        tracing.SERVER,
        parent=tracing.parent_of(request.headers),
        attributes={"http.request.method": request.method, "url.path": request.path},
    ) as span:
        response = await handler(request)
        assert span is not None  # only installed while tracing is on
        bound = logs.current()
        for key, attribute in _ATTRIBUTES:
            if (value := bound.get(key)) is not None:
                span.set_attribute(attribute, str(value))
        tracing.answered(span, response.status, f"HTTP {response.status}" if response.status >= 500 else None)
        return response
