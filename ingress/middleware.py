"""The one place where typed errors become HTTP answers, and where each request gets its log line.

Every answer that is not a success is `{"error": "<short reason>"}` JSON, whatever raised it: our
typed errors, aiohttp's own (an unknown path, a wrong method on /healthz), or a bug (500, logged
with its traceback).
"""

import logging
import time
from typing import Final

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from common import logs
from ingress.errors import BrokerUnavailable, IngressError
from ingress.metrics import REQUESTS

log = structlog.get_logger("ingress")
_lines = logs.HotLogger("ingress")  # the line per request

# Set by a handler on the request to say how it ended (`enqueued`, `verification_ping`, …).
OUTCOME: Final = web.RequestKey("resultbus.outcome", str)
# Set by a handler to log its success at debug level (health probes every few seconds).
QUIET: Final = web.RequestKey("resultbus.quiet", bool)
# Set by the hook handler once the source is known: a label only for configured sources, so a
# scanner trying random paths cannot grow the metrics without bound.
SOURCE: Final = web.RequestKey("resultbus.source", str)


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def make_middleware(*, retry_after: int) -> Middleware:
    retry_after_value = str(retry_after)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Context from an earlier request on the same keep-alive connection must not leak in.
        logs.clear()
        started = time.perf_counter()
        try:
            response = await handler(request)
        except IngressError as exc:
            headers = dict(exc.headers)
            if isinstance(exc, BrokerUnavailable):
                headers["Retry-After"] = retry_after_value
            _summary(request, started, exc.status, type(exc).__name__, detail=exc.detail)
            return error_response(exc.status, exc.reason, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            _summary(request, started, exc.status, "http_error", detail=exc.reason)
            allow = exc.headers.get("Allow")
            return error_response(exc.status, exc.reason.lower(), {"Allow": allow} if allow else None)
        except Exception:
            log.exception(
                "request failed",
                method=request.method,
                path=request.path,
                status=500,
                outcome="bug",
                duration_ms=_elapsed_ms(started),
            )
            return error_response(500, "internal error")
        _summary(
            request, started, response.status, request.get(OUTCOME, "ok"), quiet=request.get(QUIET, False)
        )
        return response

    return middleware


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def report_malformed(remote: str | None, status: int, reason: str) -> None:
    """A request aiohttp's parser refused (common/listener.py answered it): counted and logged like
    any request the sender got wrong, in one line without what it sent."""
    REQUESTS.answered("-", status)
    log.warning("request", remote=remote, status=status, outcome="malformed_http", detail=reason)


def _summary(
    request: web.Request,
    started: float,
    status: int,
    outcome: str,
    *,
    detail: str | None = None,
    quiet: bool = False,
) -> None:
    if not quiet:
        # Bounded: sources are configured, statuses are few.
        REQUESTS.answered(request.get(SOURCE, "-"), status)
        REQUESTS.took(time.perf_counter() - started)
    if quiet:
        level = logging.DEBUG
    elif status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    fields = {
        "method": request.method,
        "path": request.path,
        "remote": request.remote,
        "status": status,
        "outcome": outcome,
        "duration_ms": _elapsed_ms(started),
    }
    if detail:
        fields["detail"] = detail
    _lines.log(level, "request", fields)
