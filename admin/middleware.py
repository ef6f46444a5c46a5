"""The admin API's one middleware: bearer authentication, typed errors to JSON answers, and one
log line per request with its outcome."""

import hmac
import time
from typing import Final

import asyncpg
import msgspec
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from admin.errors import AdminError, BadRequest, Unauthorized, Unavailable
from common import logs
from common.errors import TRANSIENT

log = structlog.get_logger("admin")

# Paths any caller may read: liveness, readiness (an orchestrator probes it without the token:
# deploy/kubernetes/base/admin.yaml), the API's own description and the console's icon (which a
# browser asks for at the site's root, without credentials): none holds data.
PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/favicon.ico"})
# The operator console authenticates for itself (the same token, or its session cookie): admin/console.
CONSOLE_PREFIX: Final = "/console"


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def make_middleware(token: str | None) -> Middleware:
    expected = f"Bearer {token}".encode() if token is not None else None

    def authenticate(request: web.Request) -> None:
        if expected is None or request.path in PUBLIC_PATHS:
            return
        if request.path == CONSOLE_PREFIX or request.path.startswith(CONSOLE_PREFIX + "/"):
            return
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("missing or wrong bearer token")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        logs.clear()
        logs.bind(method=request.method, path=request.path)
        started = time.perf_counter()
        try:
            authenticate(request)
            response = await handler(request)
        except AdminError as error:
            return _answer(request, started, error.status, error.reason, error)
        except msgspec.ValidationError as error:
            return _answer(request, started, 422, str(error), error)
        except msgspec.DecodeError as error:
            return _answer(request, started, 400, f"malformed JSON: {error}", error)
        except asyncpg.DataError as error:
            # A value PostgreSQL cannot hold (a NUL character in text, say): the caller's to fix.
            return _answer(request, started, 400, f"invalid value: {error}", error)
        except TRANSIENT as error:
            return _answer(request, started, 503, "database or broker unavailable", Unavailable(repr(error)))
        except web.HTTPException as error:
            if error.status < 400:
                raise
            allow = error.headers.get("Allow")
            reason = error.reason.lower()
            return _answer(
                request,
                started,
                error.status,
                reason,
                BadRequest(reason),
                {"Allow": allow} if allow else None,
            )
        except Exception:
            log.exception("request failed", status=500, duration_ms=_elapsed_ms(started))
            return error_response(500, "internal error")
        emit = log.debug if request.path in PUBLIC_PATHS else log.info
        emit("request", status=response.status, duration_ms=_elapsed_ms(started))
        return response

    return middleware


def _answer(
    request: web.Request,
    started: float,
    status: int,
    reason: str,
    error: Exception,
    headers: dict[str, str] | None = None,
) -> web.Response:
    emit = log.error if status >= 500 else log.warning
    emit(
        "request",
        status=status,
        error=type(error).__name__,
        detail=reason[:300],
        duration_ms=_elapsed_ms(started),
    )
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return error_response(status, reason, headers)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
