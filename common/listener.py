"""The HTTP listener of a process that strangers connect to: aiohttp's server, with its connections
bounded in time and number, and the requests its parser refuses answered without echoing them.

aiohttp alone waits for a request's headers as long as its keep-alive allows (an hour), so a
connection that sends nothing, or a header byte every few seconds, holds a descriptor for that long,
and enough of them stop the process accepting anyone. And a request its parser refuses (a header
with one invalid byte) is answered with the offending line quoted back, credentials included, and
logged with a traceback. Here:

    headers      a connection has `header_timeout` from its opening, and a later request from its
                 first byte, to deliver complete headers; it is closed otherwise (silent or slowloris)
    keep-alive   an idle connection between requests is closed after `keepalive_timeout`
    connections  at most `max_connections` open: one more closes the connection idle the longest
                 (between requests, or still sending its headers) to take its place; when every
                 connection is in a request, the newcomer is answered 503 with Retry-After and closed
    refused      a request the parser refuses is answered 400 `{"error": "malformed request: ..."}`
                 with a reason from aiohttp's fixed words (never the bytes it quotes), reported to
                 `on_malformed` (one line and a count, the caller's), and the connection closed

A connection's phase is tracked from its bytes: headers end at the first blank line (aiohttp's parser
takes CRLF line ends only), the request ends when its response is written.
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import prometheus_client
import structlog
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("listener")

OPEN = prometheus_client.Gauge(
    "resultbus_http_connections", "Connections open on the HTTP listener.", ["listener"]
)
CLOSED = prometheus_client.Counter(
    "resultbus_http_connections_closed",
    "Connections the HTTP listener closed by itself: header_timeout (headers not complete in time),"
    " evicted (idle the longest when the connection limit was reached), refused (503 at the limit).",
    ["listener", "reason"],
)

# (remote address, status, reason): how the caller logs and counts a request the parser refused.
OnMalformed = Callable[[str | None, int, str], None]

_HEADERS, _REQUEST, _IDLE = "headers", "request", "idle"
_END_OF_HEADERS: Final = b"\r\n\r\n"
_REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b'Connection: close\r\nContent-Length: 32\r\n\r\n{"error": "too many connections"}'
)
# How long a refused connection is kept half-closed so that the client reads the 503 before its
# request meets a reset.
_REFUSAL_LINGER: Final = 1.0
# Fixed words per kind of refusal, for when aiohttp's own first line quotes what was sent.
_REASONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (http_exceptions.BadHttpMethod, "unknown method"),
    (http_exceptions.BadStatusLine, "malformed request line"),
    (http_exceptions.LineTooLong, "request line or header too long"),
    (http_exceptions.InvalidHeader, "malformed header"),
    (http_exceptions.InvalidURLError, "malformed URL"),
    (http_exceptions.PayloadEncodingError, "malformed body framing"),
)
# A client's fault that aiohttp logs as an "Unhandled exception" when it meets it after the answer
# (draining the rest of a body that does not decode, a connection gone): not worth an error line.
_CLIENT_FAULTS: Final = (web.RequestPayloadError, http_exceptions.HttpProcessingError, ConnectionError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1000


def malformed_reason(error: BaseException | None) -> str:
    """What to tell the sender of a request aiohttp's parser refused: its fixed description
    (`Invalid header value char`) when that quotes nothing, else the kind of error."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    if lines and lines[0].endswith("message:"):  # "400, message:"
        lines = lines[1:]
    first = lines[0].rstrip(":") if lines else ""
    if first and len(first) <= 80 and not any(c in first for c in "'\"\\") and first.isascii():
        return f"malformed request: {first}"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return f"malformed request: {reason}"
    return "malformed request"


class Connections:
    """The listener's open connections, and those of them not in a request in the order they became
    so (the first is the one idle the longest: found in constant time when the limit is reached)."""

    def __init__(self, name: str, limits: ConnectionLimits, on_malformed: OnMalformed) -> None:
        self.name = name
        self.limits = limits
        self.on_malformed = on_malformed
        self._open: dict[GuardedRequestHandler, None] = {}
        self._idle: dict[GuardedRequestHandler, None] = {}  # dicts keep their insertion order
        self._full = False
        self._open_gauge = OPEN.labels(name)
        self._closed = {
            reason: CLOSED.labels(name, reason) for reason in ("header_timeout", "evicted", "refused")
        }

    def admit(self, handler: "GuardedRequestHandler") -> bool:
        """Takes `handler` in, closing the connection idle the longest if the limit is reached;
        False when every open connection is in a request."""
        if len(self._open) >= self.limits.max_connections:
            self._limit_reached()
            victim = next(iter(self._idle), None)
            if victim is None:
                self._closed["refused"].inc()
                return False
            self.forget(victim)
            victim.force_close()
            self._closed["evicted"].inc()
        self._open[handler] = None
        self._idle[handler] = None
        self._open_gauge.inc()
        return True

    def entered(self, handler: "GuardedRequestHandler", phase: str) -> None:
        self._idle.pop(handler, None)
        if phase != _REQUEST and handler in self._open:
            self._idle[handler] = None  # last in line: idle the shortest

    def forget(self, handler: "GuardedRequestHandler") -> None:
        self._idle.pop(handler, None)
        if handler in self._open:
            del self._open[handler]
            self._open_gauge.dec()
        if self._full and len(self._open) < self.limits.max_connections * 0.9:
            self._full = False
            log.info("connections below the limit again", listener=self.name, open=len(self._open))

    def header_timeout(self, received: int, remote: str | None) -> None:
        self._closed["header_timeout"].inc()
        # A connection that never sent a byte is routine (a port probe, a pre-opened connection).
        emit = log.info if received else log.debug
        emit(
            "connection closed: headers not received in time",
            listener=self.name,
            remote=remote,
            received_bytes=received,
            header_timeout_s=self.limits.header_timeout,
        )

    def _limit_reached(self) -> None:
        if not self._full:
            self._full = True
            log.warning(
                "connection limit reached: the longest idle connections are closed to admit new ones,"
                " and new ones refused (503) while every connection is in a request",
                listener=self.name,
                max_connections=self.limits.max_connections,
            )


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, with the phase of its connection tracked (see the module)."""

    __slots__ = (
        "_clock",
        "_connections",
        "_deadline",
        "_phase",
        "_received",
        "_refused",
        "_started",
        "_tail",
    )

    def __init__(
        self, manager: web.Server, connections: Connections, *, loop: asyncio.AbstractEventLoop, **kwargs: Any
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._clock = loop
        self._connections = connections
        self._deadline: asyncio.TimerHandle | None = None
        self._refused: asyncio.Transport | None = None
        self._received = 0  # bytes of the headers so far
        self._started = False  # a byte of the request line seen (blank lines before it are skipped)
        self._tail = b""  # the last bytes seen, for an end of headers split across two reads
        self._phase = _HEADERS

    # -- the connection's life ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._connections.admit(self):
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # what a refused client sends is read and dropped, so that it sees the 503
        if self._phase == _IDLE:
            self._await_headers()
        if self._phase == _HEADERS and self._headers_complete(data):
            # Before aiohttp sees the bytes: it may answer the request before returning.
            self._enter(_REQUEST)
        if self._phase == _REQUEST and (self._close or self._force_close) and not self._closing():
            # Shutdown marks every connection closing, after which aiohttp drops what arrives: the
            # rest of a body still on its way too, and its request, which shutdown waits for, would
            # end in a 408 instead of its 200. Its bytes are read; the connection closes after it.
            close, force = self._close, self._force_close
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                self._close, self._force_close = self._close or close, self._force_close or force
            return
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_deadline()
        if self._refused is not None:
            self._refused = None
            return
        self._connections.forget(self)
        super().connection_lost(exc)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            # The next request's headers are awaited from its first byte; until then the connection
            # is idle, which aiohttp's keep-alive bounds.
            self._enter(_IDLE)

    # -- what aiohttp would have echoed and logged ------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # only a bug gets here: the middleware answers whatever a handler raises
            log.error("request failed in the HTTP server", listener=self._connections.name, exc_info=exc)
            reason = "internal error"
        else:
            reason = malformed_reason(exc)
            self._connections.on_malformed(request.remote, status, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent: the connection is closed instead")
        response = web.json_response({"error": reason}, status=status)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        if isinstance(error, _CLIENT_FAULTS):
            log.debug(
                "request ended by the client's fault", listener=self._connections.name, error=repr(error)
            )
            return
        super().log_exception(*args, **kw)

    # -- phases ---------------------------------------------------------------------------------------

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self._connections.entered(self, phase)
        if phase != _HEADERS:
            self._cancel_deadline()

    def _await_headers(self) -> None:
        self._enter(_HEADERS)
        self._received, self._started, self._tail = 0, False, b""
        self._cancel_deadline()
        self._deadline = self._clock.call_later(self._connections.limits.header_timeout, self._headers_late)

    def _headers_complete(self, data: bytes) -> bool:
        self._received += len(data)
        if not self._started:
            data = data.lstrip(b"\r\n")
            if not data:
                return False
            self._started = True
        if _END_OF_HEADERS in data or _END_OF_HEADERS in self._tail + data[:3]:
            return True
        self._tail = (self._tail + data[-3:])[-3:]
        return False

    def _headers_late(self) -> None:
        self._deadline = None
        if self._phase != _HEADERS or self.transport is None:
            return
        remote = None
        with contextlib.suppress(Exception):
            peer = self.transport.get_extra_info("peername")
            remote = str(peer[0]) if peer else None
        self._connections.header_timeout(self._received, remote)
        self._connections.forget(self)
        self.force_close()

    def _closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's transports do not subclass asyncio's
        self._refused = transport
        transport.write(_REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._clock.call_later(_REFUSAL_LINGER, transport.close)


class GuardedSite(web.BaseSite):
    """A TCP listener for `runner` whose connections are GuardedRequestHandlers."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        name: str,
        limits: ConnectionLimits,
        on_malformed: OnMalformed,
        reuse_port: bool = False,
        **handler_options: Any,
    ) -> None:
        """`handler_options` are aiohttp's RequestHandler options (max_line_size, max_headers, ...).
        `reuse_port`: several processes listen on the port (SO_REUSEPORT), the kernel spreads the
        connections among them."""
        super().__init__(runner)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self.connections = Connections(name, limits, on_malformed)
        self._options = {**handler_options, "keepalive_timeout": limits.keepalive_timeout}
        # Access lines are the middleware's: aiohttp's own would be one more line per request.
        self._options.setdefault("access_log", None)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None, "runner.setup() first"

        def handler() -> GuardedRequestHandler:
            return GuardedRequestHandler(manager, self.connections, loop=loop, **self._options)

        self._server = await loop.create_server(
            handler, self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port or None
        )
        _ensure_descriptors(self.connections.name, self.connections.limits.max_connections + _RESERVED_FDS)


# Descriptors the process needs beside its listener's connections: the broker's and the database's
# connections, its log stream, the metrics listener.
_RESERVED_FDS: Final = 64


def _ensure_descriptors(name: str, wanted: int) -> None:
    """Raises the process's soft descriptor limit to what the connection limit needs (up to the hard
    limit, as Go's runtime does): a limit of 1,024 would otherwise fail accepts before the connection
    limit is reached, and the limit would protect nothing."""
    try:
        import resource
    except ImportError:  # not on every platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        log.warning(
            "the open-file limit is below what the connection limit needs: lower"
            " RESULTBUS_MAX_CONNECTIONS or raise the limit (ulimit -n)",
            listener=name,
            open_files=soft,
            needed=wanted,
        )
