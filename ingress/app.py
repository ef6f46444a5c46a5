"""The aiohttp application: `POST /hooks/{source}`, `GET /healthz`, `GET /readyz`.

The webhook handler checks, in this order and each as cheaply as it can: the source exists, the
caller's address is allowed, the method, the content type, the size (by Content-Length before
reading, and again while reading a chunked body), the authentication. It then wraps the raw body in
an envelope and answers 200 only once the broker confirmed it.
"""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Protocol

from aiohttp import hdrs, web

from common import logs, tracing
from ingress.errors import (
    CallerNotAllowed,
    IncompleteBody,
    MalformedBody,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UnknownSource,
    UnsupportedMediaType,
)
from ingress.ids import new_webhook_id
from ingress.middleware import OUTCOME, QUIET, SOURCE, error_response, make_middleware
from ingress.settings import IngressSettings
from ingress.sources import Source
from ingress.traced import traced
from schemas.envelope import RawEnvelope, encode_envelope
from schemas.inspera import is_verification_ping
from schemas.topology import raw_routing_key
from schemas.vendor import Vendor
from vendors import SPECS

_JSON: Final = "application/json"
_VERIFIED: Final = b'{"status":"verified"}'
_ALIVE: Final = b'{"status":"alive"}'
_READY: Final = b'{"status":"ready"}'


class EnvelopePublisher(Protocol):
    @property
    def ready(self) -> bool: ...

    async def publish(self, envelope: bytes, message_id: str, routing_key: str) -> None: ...


class Readiness:
    """Mutable on purpose: the app is frozen once started, this flag is flipped at shutdown."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


READINESS: Final = web.AppKey("resultbus.readiness", Readiness)


def mark_draining(app: web.Application) -> None:
    """Shutdown has begun: /readyz answers 503 from now on so that no new traffic is routed here."""
    app[READINESS].draining = True


class _Route:
    """A source with what the handler derives from it, computed once."""

    __slots__ = ("media_types", "routing_key", "source")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.routing_key = raw_routing_key(source.vendor, source.id)
        self.media_types = SPECS[source.vendor].media_types


def create_app(
    settings: IngressSettings, sources: Mapping[str, Source], publisher: EnvelopePublisher
) -> web.Application:
    routes = {source_id: _Route(source) for source_id, source in sources.items()}
    readiness = Readiness()
    bind = logs.bind

    async def hook(request: web.Request) -> web.Response:
        segment = request.match_info["source"]
        route = routes.get(segment)
        if route is None:
            raise UnknownSource(f"no source {segment[:64]!r}")
        source = route.source
        request[SOURCE] = source.id
        webhook_id = new_webhook_id()
        bind(webhook_id=webhook_id, source=source.id, vendor=source.vendor.value)
        remote = request.remote
        if not source.allows(remote):
            raise CallerNotAllowed(f"{remote} is not in the allowlist")
        if request.method != hdrs.METH_POST:
            raise MethodNotAllowed(request.method)
        content_type = request.headers.get(hdrs.CONTENT_TYPE)
        if content_type is None:
            raise UnsupportedMediaType("no Content-Type")
        if content_type.partition(";")[0].strip().lower() not in route.media_types:
            raise UnsupportedMediaType(f"Content-Type {content_type[:100]!r}")
        if request.content.is_eof():  # all of it has arrived (usual for a small body): no wait
            body = await _read_body(request, source.max_body_bytes)
        else:
            try:
                async with asyncio.timeout(settings.read_timeout):
                    body = await _read_body(request, source.max_body_bytes)
            except TimeoutError:
                raise RequestTimeout(f"body not received within {settings.read_timeout}s") from None

        if source.vendor is Vendor.INSPERA and is_verification_ping(body):
            # Answered before the signature check on purpose: Inspera sends one verification per
            # endpoint, not per subscription, and documents no signature for it; a 401 here would
            # make Inspera unsubscribe the endpoint. It is never enqueued, so it can do no harm.
            request[OUTCOME] = "verification_ping"
            return web.Response(body=_VERIFIED, content_type=_JSON)

        source.authenticator.check(request.headers, body)
        envelope = RawEnvelope(
            id=webhook_id,
            source=source.id,
            vendor=source.vendor,
            received_at=datetime.now(UTC),
            # As sent, parameters included: the worker needs a multipart boundary to parse the body.
            content_type=content_type,
            body=body,
            event=source.event,
            remote=remote,
        )
        await publisher.publish(encode_envelope(envelope), webhook_id, route.routing_key)
        request[OUTCOME] = "enqueued"
        return web.Response(body=b'{"id":"%s"}' % webhook_id.encode(), content_type=_JSON)

    async def healthz(request: web.Request) -> web.Response:
        request[QUIET] = True
        return web.Response(body=_ALIVE, content_type=_JSON)

    async def readyz(request: web.Request) -> web.Response:
        request[QUIET] = True
        if readiness.draining:
            return error_response(503, "shutting down")
        if not publisher.ready:
            return error_response(503, "broker not connected")
        return web.Response(body=_READY, content_type=_JSON)

    largest = max((source.max_body_bytes for source in sources.values()), default=1)
    app = web.Application(
        middlewares=[
            *([traced] if tracing.ENABLED else []),
            make_middleware(retry_after=settings.retry_after),
        ],
        # Each source enforces its own limit before reading; this only keeps aiohttp's own cap
        # from being the tighter one.
        client_max_size=largest,
    )
    app[READINESS] = readiness
    app.router.add_route("*", "/hooks/{source}", hook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def _read_body(request: web.Request, limit: int) -> bytes:
    try:
        return await _read_bounded(request, limit)
    except ConnectionError:  # aiohttp's ConnectionResetError("Connection lost"), mid-body
        raise IncompleteBody("the connection closed before all of the body arrived") from None
    except web.RequestPayloadError as error:  # a chunk or Content-Encoding that does not decode
        raise MalformedBody(f"body: {_description(error)}") from None


def _description(error: Exception) -> str:
    """aiohttp's words for what is wrong (`Can not decode content-encoding: gzip`), without the bytes
    it quotes after them: the body is never logged."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].endswith("message:"):  # "400, message:"
        lines = lines[1:]
    return lines[0].rstrip(":")[:100] if lines else type(error).__name__


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None:
        # Refused before reading a byte; aiohttp's parser never delivers more than Content-Length.
        if length > limit:
            raise PayloadTooLarge(f"Content-Length {length} > {limit}")
        return await request.read()
    # Chunked, no length announced: read until the end or one byte past the limit, whichever first.
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"chunked body > {limit}")
        chunks.append(chunk)
    return b"".join(chunks)
