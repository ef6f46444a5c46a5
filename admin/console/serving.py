"""The console's aiohttp side: its sub-application, the middleware that lets callers in and checks
CSRF tokens, template rendering, and the headers every console response carries."""

import contextvars
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import jinja2
import msgspec
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from admin import bodies
from admin.console import auth, display
from admin.errors import AdminError
from common.errors import TRANSIENT

log = structlog.get_logger("console")

PREFIX: Final = "/console"
TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"

# Pages hold candidates' personal data: not cached, not framed, nothing from elsewhere, no inline
# script (a value that escaped escaping still could not run).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Caller(msgspec.Struct, frozen=True):
    session: auth.Session | None  # None: authenticated by the bearer token, no cookie involved
    csrf: str
    authenticated: bool


# The caller of the request being handled: set by the middleware, read by the handlers and templates
# (a context variable: each request is handled in a task, which has its own copy).
_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("console_caller", default=None)


def caller() -> Caller:
    found = _CALLER.get()
    assert found is not None, "a console handler outside the console's middleware"
    return found


class BadInput(Exception):
    """A form or query value the page cannot use: a 400 page that says which."""


class Refused(Exception):
    """A form the console will not act on (sent from another site, stale, or without a session): an
    error page that says why in an operator's words, and the way back to where they were."""

    def __init__(self, status: int, message: str, *, sign_in: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.sign_in = sign_in


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = display.when
    env.filters["ago"] = display.ago
    env.filters["body"] = display.show_body
    env.filters["pretty_json"] = display.pretty_json
    return env


class Renderer:
    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env

    def page(
        self, request: web.Request, template: str, http_status: int = 200, /, **context: Any
    ) -> web.Response:
        caller = _CALLER.get()
        # Every form carries `back`, the page it was sent from: where an error page, or a sign-in
        # after the session ended, takes the operator back to. A page that answers a form says its own.
        context.setdefault("back", request.path_qs if request.method == "GET" else PREFIX + "/")
        html = self._env.get_template(template).render(
            prefix=PREFIX,
            csrf=caller.csrf if caller else "",
            signed_in=bool(caller and caller.authenticated),
            via_token=bool(caller and caller.session is None and caller.authenticated),
            path=request.path,
            **context,
        )
        return web.Response(text=html, status=http_status, content_type="text/html", charset="utf-8")


def safe_next(value: str | None) -> str:
    """Where to go after login: a console path of this site, never another site."""
    if not value:
        return PREFIX + "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(PREFIX) or value.startswith("//"):
        return PREFIX + "/"
    return value


def make_middleware(
    sessions: auth.Sessions, renderer: Renderer
) -> Callable[..., Awaitable[web.StreamResponse]]:
    public = (PREFIX + "/login", PREFIX + "/static/")

    def identify(request: web.Request) -> tuple[Caller | None, str | None]:
        """The caller, and a new cookie to set (an anonymous session for the login form, or an
        authenticated one when the API runs without authentication)."""
        if sessions.bearer_matches(request.headers.get("Authorization", "")):
            return Caller(None, "", True), None
        session = sessions.read(request.cookies.get(auth.COOKIE))
        if session is not None and session.authenticated:
            return Caller(session, sessions.csrf(session), True), None
        if sessions.open:
            session, cookie = sessions.issue(authenticated=True)
            return Caller(session, sessions.csrf(session), True), cookie
        if request.path.startswith(public):
            if session is None:
                session, cookie = sessions.issue(authenticated=False)
                return Caller(session, sessions.csrf(session), False), cookie
            return Caller(session, sessions.csrf(session), False), None
        return None, None

    async def check_form(request: web.Request, caller: Caller) -> None:
        # Read here for every POST, the bearer token's too: a form that cannot be parsed is a 400
        # page, and the handlers' own `request.post()` gets this one, already parsed.
        form = await bodies.form(request)
        if caller.session is None:
            return  # the bearer token: not something a browser sends by itself
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            raise Refused(
                403,
                f"Refused, and nothing was done: your browser says this form was sent from a page of"
                f" another web site ({origin[:200]}), not from this console ({request.host[:200]})."
                " Another site's page may not act in your name here. If you did use the console's own"
                " page, you probably reach it through a proxy that changes the Host header: have the"
                " proxy pass the original Host on (see docs/console.md, Security).",
            )
        given = form.get("csrf")
        if not isinstance(given, str) or not sessions.csrf_matches(caller.session, given):
            raise Refused(
                403,
                "Refused, and nothing was done: this form was made for an earlier sign-in (you signed"
                " in again since, or in another tab), or did not come from this console. Go back to the"
                " page, which shows the form afresh, and send it again.",
            )

    async def back_of(request: web.Request) -> str:
        """The page a form was sent from (its `back` field), else the overview."""
        if request.method == "POST":
            try:
                form = await bodies.form(request)
            except AdminError:  # not a form we can read
                return PREFIX + "/"
            given = form.get("back")
            if isinstance(given, str) and given:
                return safe_next(given)
        return PREFIX + "/"

    async def error_page(
        request: web.Request, status: int, message: str, *, sign_in: bool = False
    ) -> web.Response:
        back = await back_of(request)
        return renderer.page(
            request,
            "error.html",
            status,
            message=message,
            back=back,
            sign_in=f"{PREFIX}/login?{_query(next=back)}" if sign_in else None,
        )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        caller, cookie = identify(request)
        try:
            if caller is None:
                if request.method in ("GET", "HEAD"):
                    raise web.HTTPSeeOther(f"{PREFIX}/login?{_query(next=request.path_qs)}")
                raise Refused(
                    401,
                    "Your session has ended (a sign-in lasts 8 hours, and signing out ends it), so"
                    " what you sent was not done. Sign in again to go back to the page you were on,"
                    " then send it again.",
                    sign_in=True,
                )
            _CALLER.set(caller)
            if request.method == "POST":
                await check_form(request, caller)
            response = await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                _remember(error, request, cookie, caller)
                raise
            response = await error_page(request, error.status, error.reason)
        except Refused as error:
            response = await error_page(request, error.status, error.message, sign_in=error.sign_in)
        except BadInput as error:
            response = await error_page(request, 400, str(error))
        except AdminError as error:
            response = await error_page(request, error.status, error.reason)
        except TRANSIENT as error:
            log.warning("console page unavailable", error=repr(error))
            response = await error_page(request, 503, "the database or the broker is unavailable: try again")
        _remember(response, request, cookie, caller)
        log.debug("console", status=response.status, ms=round((time.perf_counter() - started) * 1000, 2))
        return response

    return middleware


def _remember(
    response: web.StreamResponse, request: web.Request, cookie: str | None, caller: Caller | None
) -> None:
    if cookie is not None and caller is not None and caller.session is not None:
        auth.set_cookie(response, request, cookie, caller.session)


def _query(**values: str) -> str:
    return urlencode(values)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
