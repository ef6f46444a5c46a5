"""structlog set-up: JSON lines outside a terminal, readable lines inside one.

Context (webhook id, source, vendor) is bound with contextvars per request or message, so every line
logged while handling it carries them.
"""

import logging
import sys
from typing import TextIO

import msgspec
import structlog


def configure_logging(level: str = "INFO", *, json: bool | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: structlog.typing.Processor = (
        # msgspec writes the line several times faster than json.dumps: it matters at one line
        # per webhook. Anything it cannot encode (an exception, say) is written as its str().
        structlog.processors.JSONRenderer(serializer=_to_json) if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


_encoder = msgspec.json.Encoder(enc_hook=str)


def _to_json(event: object, **_: object) -> str:
    return _encoder.encode(event).decode()
