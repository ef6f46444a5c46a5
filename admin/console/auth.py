"""Who may use the console, and proof that a form was sent from one of its own pages.

A caller is let in by the admin API's bearer token in an `Authorization` header (scripts, tests), or
by a session cookie that the login form sets after checking that same token. The cookie is signed,
opaque and expiring: `v1.<nonce>.<expires>.<kind>.<mac>`, with the MAC keyed by a key derived from
the token, so that changing the token ends every session and any admin process of a deployment
accepts the sessions of the others. It is HttpOnly, SameSite=Strict, limited to /console, and Secure
when the console is reached over https (directly, or behind a proxy that says so in
X-Forwarded-Proto).

Every form that changes something carries a CSRF token: the MAC of the session's nonce, checked on
POST. The login form itself is protected the same way by an anonymous session (kind `n`), replaced by
a new, authenticated one (kind `a`) on login, so that a session id is never carried over.
"""

import base64
import hashlib
import hmac
import secrets
import time
from typing import Final

import msgspec
from aiohttp import web

COOKIE: Final = "resultbus_console"
SESSION_SECONDS: Final = 8 * 3600
ANONYMOUS_SECONDS: Final = 3600
_KIND_AUTHENTICATED: Final = "a"
_KIND_ANONYMOUS: Final = "n"


class Session(msgspec.Struct, frozen=True):
    nonce: str
    expires: int
    authenticated: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sessions:
    """Issues and checks session cookies and CSRF tokens. `token` None: the admin API runs without
    authentication, and so does the console (a per-process key still binds the CSRF tokens)."""

    def __init__(self, token: str | None) -> None:
        self.open = token is None
        self._token = None if token is None else token.encode("utf-8", "surrogatepass")
        key_material = secrets.token_bytes(32) if self._token is None else self._token
        self._key = hmac.new(key_material, b"resultbus console session v1", hashlib.sha256).digest()
        # Logged-out sessions, until they would have expired anyway (per process: see docs/console.md).
        self._revoked: dict[str, int] = {}

    def _mac(self, message: str) -> str:
        return _b64(hmac.new(self._key, message.encode(), hashlib.sha256).digest())

    def token_matches(self, given: str) -> bool:
        if self._token is None:
            return True
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._token)

    def bearer_matches(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return self._token is not None and scheme == "Bearer" and self.token_matches(value)

    def issue(self, *, authenticated: bool, now: float | None = None) -> tuple[Session, str]:
        moment = int(time.time() if now is None else now)
        lifetime = SESSION_SECONDS if authenticated else ANONYMOUS_SECONDS
        session = Session(_b64(secrets.token_bytes(16)), moment + lifetime, authenticated)
        kind = _KIND_AUTHENTICATED if authenticated else _KIND_ANONYMOUS
        body = f"v1.{session.nonce}.{session.expires}.{kind}"
        return session, f"{body}.{self._mac(body)}"

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie stands for, or None if it is forged, malformed, expired or logged out."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 5 or parts[0] != "v1" or parts[3] not in (_KIND_AUTHENTICATED, _KIND_ANONYMOUS):
            return None
        body = ".".join(parts[:4])
        if not hmac.compare_digest(parts[4], self._mac(body)):
            return None
        try:
            expires = int(parts[2])
        except ValueError:
            return None
        moment = time.time() if now is None else now
        if expires <= moment or parts[1] in self._revoked:
            return None
        return Session(parts[1], expires, parts[3] == _KIND_AUTHENTICATED)

    def revoke(self, session: Session, *, now: float | None = None) -> None:
        moment = time.time() if now is None else now
        self._revoked = {n: e for n, e in self._revoked.items() if e > moment}
        self._revoked[session.nonce] = session.expires

    def csrf(self, session: Session) -> str:
        return self._mac(f"csrf.{session.nonce}")

    def csrf_matches(self, session: Session, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.csrf(session).encode())


def is_https(request: web.Request) -> bool:
    # Only decides whether the cookie gets `Secure`: a lying header can only make it stricter.
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def set_cookie(response: web.StreamResponse, request: web.Request, value: str, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max(0, session.expires - int(time.time())),
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/console")
