"""structlog set-up: JSON lines outside a terminal, readable lines inside one.

Context (webhook id, source, vendor) is bound with contextvars per request or message, so every line
logged while handling it carries them.
"""

import logging
import sys
from typing import TextIO

import msgspec
import structlog


def configure_logging(
    level: str = "INFO", *, json: bool | None = None, stream: TextIO | None = None, role: str | None = None
) -> None:
    """`role` is written on every line: several processes of `make run` share one terminal."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: structlog.typing.Processor = (
        # msgspec writes the line several times faster than json.dumps: it matters at one line
        # per webhook. Anything it cannot encode (an exception, say) is written as its str().
        structlog.processors.JSONRenderer(serializer=_to_json) if json else structlog.dev.ConsoleRenderer()
    )
    tag: list[structlog.typing.Processor] = [_Role(role)] if role else []
    structlog.configure(
        processors=[
            *tag,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line (print() writes the line and its newline apart): lines of processes
        # sharing a pipe interleave whole, never mid-line.
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


_encoder = msgspec.json.Encoder(enc_hook=str)


def _to_json(event: object, **_: object) -> str:
    return _encoder.encode(event).decode()


class _Role:
    __slots__ = ("_role",)

    def __init__(self, role: str) -> None:
        self._role = role

    def __call__(self, _: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("role", self._role)
        return event
