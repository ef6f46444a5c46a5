"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for OneRoster providers: one token per
(token endpoint, client, scope), cached and refreshed before it expires; a token the API refuses is
replaced once (`refresh`), however many requests saw it refused at the same time.

The client secret is read from the environment variable the destination names, when a token is
needed; neither it nor a token is ever logged or put into an error text.
"""

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote, urlencode

import aiohttp
import msgspec
import structlog

from gradebook.config import ClientCredentials
from schemas.oneroster import decode_token, decode_token_error
from subscribers.poster import parse_retry_after

log = structlog.get_logger("gradebook")

# Refresh this long before expiry (at most): a token must not expire between check and use.
REFRESH_MARGIN: Final = 60.0
# ... and never later than this share of its lifetime before the end (short-lived tokens).
REFRESH_SHARE: Final = 0.1
DEFAULT_LIFETIME: Final = 3600.0  # when the provider gives no `expires_in`


class TokenFailure(Exception):
    """No token: `status` is the token endpoint's answer (None: none came), `error` says why."""

    def __init__(self, status: int | None, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after


class _Token(msgspec.Struct):
    value: str
    refresh_at: float


Key = tuple[str, str, str]


class Tokens:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        max_response_bytes: int,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        check_url: Callable[[str], None] = lambda url: None,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max = max_response_bytes
        self._env = env
        self._clock = clock
        self._check_url = check_url
        self._cache: dict[Key, _Token] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self.fetched = 0  # tokens obtained (for tests and metrics)

    @staticmethod
    def _key(creds: ClientCredentials) -> Key:
        return (creds.token_url, creds.client_id, creds.scope)

    async def token(self, creds: ClientCredentials) -> str:
        key = self._key(creds)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)  # fetched while this one waited
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            return await self._fetch(key, creds)

    async def refresh(self, creds: ClientCredentials, refused: str) -> str:
        """A new token after the API refused `refused`; only the first of many callers fetches."""
        key = self._key(creds)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)
            if cached is not None and cached.value != refused and self._clock() < cached.refresh_at:
                return cached.value
            self._cache.pop(key, None)
            return await self._fetch(key, creds)

    async def _fetch(self, key: Key, creds: ClientCredentials) -> str:
        secret = self._env.get(creds.client_secret_env)
        if not secret:
            raise TokenFailure(
                None, f"token endpoint: environment variable {creds.client_secret_env} is not set"
            )
        # RFC 6749 section 2.3.1: both parts form-encoded before they are joined.
        basic = base64.b64encode(
            f"{quote(creds.client_id, safe='')}:{quote(secret, safe='')}".encode()
        ).decode()
        form = {"grant_type": "client_credentials"}
        if creds.scope:
            form["scope"] = creds.scope
        started = self._clock()
        try:
            self._check_url(creds.token_url)
            async with self._session.post(
                creds.token_url,
                data=urlencode(form),
                headers={
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                body = await response.content.read(self._max)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise TokenFailure(None, "token endpoint: timeout") from None
        except (aiohttp.ClientError, OSError) as error:
            raise TokenFailure(None, f"token endpoint: {type(error).__name__}: {error}"[:500]) from None
        if status != 200:
            raise TokenFailure(status, f"token endpoint: HTTP {status}: {_token_error(body)}", retry_after)
        try:
            answer = decode_token(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise TokenFailure(status, f"token endpoint: not a token answer: {error}") from None
        if answer.token_type.lower() != "bearer":
            raise TokenFailure(status, f"token endpoint: token type {answer.token_type!r}, not bearer")
        lifetime = answer.expires_in if answer.expires_in and answer.expires_in > 0 else DEFAULT_LIFETIME
        margin = min(REFRESH_MARGIN, lifetime * REFRESH_SHARE)
        self._cache[key] = _Token(answer.access_token, started + lifetime - margin)
        self.fetched += 1
        log.info("oauth token obtained", token_url=creds.token_url, expires_in=lifetime)
        return answer.access_token


def _token_error(body: bytes) -> str:
    try:
        error = decode_token_error(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return body[:200].decode("utf-8", "replace")
    return f"{error.error}: {error.error_description}" if error.error_description else error.error
