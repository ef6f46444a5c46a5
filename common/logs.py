"""structlog set-up: JSON lines outside a terminal, readable lines inside one.

Context (webhook id, source, vendor) is bound per request or message (`bind`, `clear`, `bound`), so
every line logged while handling it carries it. The context is one contextvar holding one mapping,
rather than structlog's one contextvar per key: structlog's merge and clear walk every variable of
the context (asyncio's and aiohttp's too) on each line and each request, a measurable share of a
request that costs ~250 µs in all.

Libraries log through the standard library (aiohttp, asyncio, aio-pika, aiormq, asyncpg): their
records are written as lines of ours (`logger` names the library), never by Python's fallback
handler, and with what looks like a credential redacted first (`redact`): aiohttp quotes a header
line it refuses, `Authorization: Basic ...` included.

Lines are written whole, one JSON object per line, and from the event loop's thread they are
gathered for one turn of the loop and written together (in writes of whole lines, at most 4 KiB each,
so that lines of processes sharing a pipe still interleave whole, never mid-line): one syscall per
turn rather than one per line. Elsewhere (a thread, no loop) a line is written at once.
"""

import asyncio
import atexit
import contextlib
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TextIO

import msgspec
import structlog

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("resultbus_log_context", default=_EMPTY)


def bind(**values: Any) -> None:
    """Every line logged from this context (this task, and tasks it starts) carries `values`."""
    _CONTEXT.set({**_CONTEXT.get(), **values})


def unbind(*keys: str) -> None:
    context = _CONTEXT.get()
    _CONTEXT.set({k: v for k, v in context.items() if k not in keys})


def clear() -> None:
    _CONTEXT.set(_EMPTY)


def current() -> Mapping[str, Any]:
    """What is bound in this context (a trace's span copies it)."""
    return _CONTEXT.get()


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """`bind` for the block only."""
    token = _CONTEXT.set({**_CONTEXT.get(), **values})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _merge_context(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    bound_values = _CONTEXT.get()
    return {**bound_values, **event} if bound_values else event


def configure_logging(
    level: str = "INFO", *, json: bool | None = None, stream: TextIO | None = None, role: str | None = None
) -> None:
    """`role` is written on every line: several processes of `make run` share one terminal."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    processors: list[structlog.typing.Processor]
    if json:
        processors = [_JsonLine(role)]
    else:
        tag: list[structlog.typing.Processor] = [_Role(role)] if role else []
        processors = [
            *tag,
            _merge_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=_bound_logger_class(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_LineWriterFactory(stream),
        cache_logger_on_first_use=True,
    )
    _route_library_loggers(level)
    global _configurations
    _configurations += 1


_configurations = 0  # how many times configure_logging ran: a HotLogger re-binds after each


class HotLogger:
    """A logger for the one line written per request: `log(level, event, fields)`, the same line as
    structlog's `log(level, event, **fields)` writes, without its lazy proxy, its keyword repacking
    and its level methods (about half of the line's cost when it is written for every webhook).
    `fields` is the line's own dict: it is consumed."""

    __slots__ = ("_bound", "_configured", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._configured = -1

    def log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        bound = self._bound
        if self._configured != _configurations:
            # Bound once per configuration, as structlog caches a logger on first use.
            bound = self._bound = structlog.get_logger(self._name).bind()
            self._configured = _configurations
        if not bound.is_enabled_for(level):
            return
        line = _the_only_json_line(bound._processors)
        if line is None:
            bound.log(level, event, **fields)  # another chain (a test's capture_logs): structlog's way
            return
        fields["event"] = event
        bound._logger.msg(line(bound._logger, _METHOD_NAMES[level], fields))


_METHOD_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


# -- the libraries' loggers ---------------------------------------------------------------------------

REDACTED: Final = "[redacted]"
# Names of headers, fields and parameters whose values are credentials or derived from one.
_SENSITIVE = (
    r"[\w-]*(?:auth|token|secret|passw|pwd|signature|\bsig\b|key|cookie|credential|session|hash)[\w-]*"
)
_REDACTIONS: Final = (
    # `Authorization: Basic ...` as aiohttp quotes a header line (up to the quote that ends it).
    # Not an exception's name (`KeyError: 'id'`, `InvalidAuthorizationSpecificationError: ...`).
    (
        re.compile(rf"(?i)\b(?![\w-]*(?:error|exception|warning)\b)({_SENSITIVE})(\s*:\s*)[^\r\n'\"\\]+"),
        rf"\1\2{REDACTED}",
    ),
    # `token=...` in a query string, a form or a key=value message.
    (re.compile(rf"(?i)\b({_SENSITIVE})=[^&\s'\"\\]+"), rf"\1={REDACTED}"),
    # A scheme's credentials wherever they stand.
    (re.compile(r"(?i)\b(Basic|Bearer|Digest|Token)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # A URL's password.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@"), r"\1:***@"),
)
_known_secrets: list[str] = []  # the longest first, so that one inside another is replaced whole


def redact_values(values: Iterable[str]) -> None:
    """Secrets this process knows (a source's password, the admin token): never written in a library's
    line, whatever the line around them looks like."""
    known = {*_known_secrets, *(v for v in values if len(v) >= 4)}
    _known_secrets[:] = sorted(known, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with credential-looking values and every known secret replaced."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class _LibraryLines(logging.Handler):
    """Records of the standard library's loggers, written as structlog lines, redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["exception"] = redact("".join(traceback.format_exception(*record.exc_info)))
            structlog.get_logger(record.name).log(record.levelno, redact(record.getMessage()), **fields)
        except Exception:
            # Never Python's fallback, which prints the record (and what it quotes) to stderr.
            pass


def _route_library_loggers(level: str) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _LibraryLines)]:
        root.removeHandler(handler)
    root.addHandler(_LibraryLines())
    # Their DEBUG is wire-level detail (every AMQP frame): INFO at most, whatever ours is.
    root.setLevel(max(logging.INFO, logging.getLevelNamesMapping()[level.upper()]))
    logging.captureWarnings(True)


# msgspec writes the line several times faster than json.dumps: it matters at one line per webhook.
# Anything it cannot encode (an exception, say) is written as its str().
_encoder = msgspec.json.Encoder(enc_hook=str)
_LEVEL_NAMES: Final = {"warn": "warning", "exception": "error"}


class _JsonLine:
    """The JSON lines' whole processor chain in one call: the bound context merged in, the role, the
    level, the time, an exception's traceback, the rendering. The same line as the chain of
    structlog's own processors (merge, role, add_log_level, TimeStamper(iso, utc), format_exc_info,
    JSONRenderer) writes, at about half the cost: one line per request and per webhook."""

    __slots__ = ("_role",)

    def __init__(self, role: str | None) -> None:
        self._role = role

    def __call__(self, logger: object, method_name: str, event: structlog.typing.EventDict) -> str:
        if self._role is not None:
            event.setdefault("role", self._role)
        bound_values = _CONTEXT.get()
        if bound_values:
            event = {**bound_values, **event}
        event["level"] = _LEVEL_NAMES.get(method_name, method_name)
        # msgspec writes an aware UTC datetime as isoformat() does, with "Z" for "+00:00".
        event["timestamp"] = datetime.now(UTC)
        if "exc_info" in event:
            event = structlog.processors.format_exc_info(logger, method_name, event)
        return _encoder.encode(event).decode()


def _the_only_json_line(processors: Sequence[Any]) -> "_JsonLine | None":
    """The chain's one processor when it is ours (the fast way to write a line), else None."""
    if len(processors) == 1 and type(processors[0]) is _JsonLine:
        return processors[0]
    return None


def _bound_logger_class(min_level: int) -> type[structlog.typing.FilteringBoundLogger]:
    """structlog's filtering logger, whose lines go straight to `_JsonLine` while it is the whole chain.

    structlog copies the logger's context, updates it, walks the chain and checks what it returned on
    every line; with one processor known to return a str, that is a third of a line's cost for
    nothing. Any other chain (a test's `capture_logs`, the console renderer) takes structlog's way.
    """
    base: Any = structlog.make_filtering_bound_logger(min_level)

    class _BoundLogger(base):  # type: ignore[misc]
        def _proxy_to_logger(self, method_name: str, event: str | None = None, **event_kw: Any) -> Any:
            line = _the_only_json_line(self._processors)
            if line is None:
                return super()._proxy_to_logger(method_name, event, **event_kw)
            # The event dict as structlog builds it: the logger's own context, the keywords, the event.
            event_dict = {**self._context, **event_kw} if self._context else event_kw
            event_dict["event"] = event
            return self._logger.msg(line(self._logger, method_name, event_dict))

    _BoundLogger.__name__ = _BoundLogger.__qualname__ = base.__name__
    return _BoundLogger


class _Role:
    __slots__ = ("_role",)

    def __init__(self, role: str) -> None:
        self._role = role

    def __call__(self, _: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("role", self._role)
        return event


_PIPE_BUF = 4096  # a write of up to this many bytes to a pipe is never interleaved with another's


class _LineWriter:
    """structlog's logger: whole lines, gathered for one turn of the event loop (see above)."""

    __slots__ = ("_pending", "_scheduled_in", "_scheduled_on", "_stream")

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        # The loop a flush is scheduled on: a loop that closes first (a test's) drops its callback,
        # and the next loop to log schedules one of its own.
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._scheduled_in = 0  # the thread of that loop

    def msg(self, message: str) -> None:
        line = message + "\n"
        scheduled = self._scheduled_on
        if scheduled is not None and self._scheduled_in == threading.get_ident() and scheduled.is_running():
            # This thread's running loop has the flush already: not asked again, as asking costs a
            # system call per line (asyncio checks the process id each time).
            self._pending.append(line)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the loop's thread: at once, after what a stopped loop left
            if self._pending:
                self.flush()
            self._write(line)
            return
        self._pending.append(line)
        if self._scheduled_on is not loop:
            self._scheduled_on, self._scheduled_in = loop, threading.get_ident()
            loop.call_soon(self.flush)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg

    def flush(self) -> None:
        self._scheduled_on = None
        pending, self._pending = self._pending, []
        chunk: list[str] = []
        size = 0
        for line in pending:
            # "replace": a lone surrogate (the console renderer passes values through) has no bytes.
            length = len(line) if line.isascii() else len(line.encode(errors="replace"))
            if chunk and size + length > _PIPE_BUF:
                self._write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += length
        if chunk:
            self._write("".join(chunk))

    def flush_at_exit(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # the stream may be closed by then
            self.flush()

    def _write(self, text: str) -> None:
        try:
            try:
                self._stream.write(text)
            except UnicodeError:  # a lone surrogate: the chunk's other lines are not lost for it
                self._stream.write(text.encode(errors="replace").decode())
            self._stream.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say so (a closed or broken stream); the next chunk still tries


class _LineWriterFactory:
    """One writer per stream: every logger of the process shares its gathered lines."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = _LineWriter(stream)
        # Whatever is gathered when the process ends normally is written, not lost.
        atexit.register(self._writer.flush_at_exit)

    def __call__(self, *_: object) -> _LineWriter:
        return self._writer
