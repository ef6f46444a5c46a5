"""The HTTP calls of one gradebook write, with the subscribers' hardened client, answered as a
subscribers.poster.Outcome so that delivery treats it like a webhook POST (retries, attempt log).

OneRoster: the line item is looked up (GET) once per process and created (PUT) when the provider
lacks it, then the result is PUT; a 401 from the API replaces the token once and repeats the call
once. Caliper: one POST of the envelope with the bearer token. The Outcome is the last call's: its
status, the provider's own message for a 4xx (imsx_description), Retry-After for 429/503, and the
time of every call together. `retryable(outcome)`: no answer, 408, 429 or 5xx.

The session is subscribers.poster.subscriber_session: the SSRF policy at every connection (token
endpoint included), no redirects followed, responses read up to `max_response_bytes`.
"""

import asyncio
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, urlsplit

import aiohttp

from common import tracing
from gradebook.config import CaliperDestination, Destination, OneRosterDestination
from gradebook.oauth import TokenFailure, Tokens
from gradebook.plan import CaliperWrite, OneRosterWrite, Write
from schemas.caliper import Envelope, encode_envelope
from schemas.oneroster import LineItemBody, ResultBody, encode, provider_message
from subscribers.poster import Outcome, parse_retry_after
from subscribers.ssrf import ForbiddenAddress, is_forbidden

_USER_AGENT: Final = "resultbus-gradebook/1"
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_KNOWN_LIMIT: Final = 10_000  # line items remembered as present, per process


def retryable(outcome: Outcome) -> bool:
    """Whether trying again later may succeed: no answer, a timeout, a rate limit, a server error, or
    credentials refused (401, 403: the whole destination's, fixed by its operator, not this result's).
    Any other 4xx is the provider refusing this write: record it with its message."""
    return outcome.status is None or outcome.status in (401, 403, 408, 429) or outcome.status >= 500


class _Answer:
    __slots__ = ("body", "retry_after", "status")

    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after


class _Failed(Exception):
    """One call went wrong in a way that ends the write: carries the Outcome's fields."""

    def __init__(self, status: int | None, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after


class Sender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        max_response_bytes: int,
        allow_private: bool,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max = max_response_bytes
        self._allow_private = allow_private
        self._env = os.environ if env is None else env
        self.tokens = Tokens(
            session,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            env=self._env,
            clock=clock,
            check_url=self._check_literal_address,
        )
        self._known: set[tuple[str, str]] = set()
        self._ensuring: dict[tuple[str, str], asyncio.Lock] = {}

    async def send(self, destination: Destination, write: Write) -> Outcome:
        if not tracing.ENABLED:
            return await self._send(destination, write)
        kind = destination.__struct_config__.tag
        with tracing.span(f"gradebook write ({kind})", tracing.INTERNAL) as span:
            outcome = await self._send(destination, write)
            tracing.answered(span, outcome.status, outcome.error)
            return outcome

    async def _send(self, destination: Destination, write: Write) -> Outcome:
        started = time.perf_counter()
        try:
            if isinstance(destination, OneRosterDestination) and isinstance(write, OneRosterWrite):
                answer = await self._oneroster(destination, write)
            elif isinstance(destination, CaliperDestination) and isinstance(write, CaliperWrite):
                answer = await self._caliper(destination, write)
            else:
                raise _Failed(
                    None,
                    f"a {type(write).__name__} cannot go to a {destination.__struct_config__.tag} destination",
                )
        except TokenFailure as failure:
            # The token endpoint's answer (its status is in the error): the destination's credentials,
            # not this result, so never final.
            return Outcome(
                status=None, latency_ms=_since(started), error=failure.error, retry_after=failure.retry_after
            )
        except _Failed as failure:
            return Outcome(
                status=failure.status,
                latency_ms=_since(started),
                error=failure.error,
                retry_after=failure.retry_after,
            )
        return Outcome(status=answer.status, latency_ms=_since(started))

    async def verify(self, destination: Destination) -> Outcome:
        """The dead-endpoint checker's call to a gradebook: one that proves the destination answers and
        takes our credentials, writing nothing. OneRoster: a token, then `GET lineItems?limit=1`.
        Caliper: an envelope with no events, which a Caliper endpoint refuses (400 or 422) or takes
        (2xx) once it has checked the token: either is alive; 401/403, 404, 5xx or no answer are not."""
        started = time.perf_counter()
        try:
            if isinstance(destination, OneRosterDestination):
                url = destination.base_url.rstrip("/") + "/lineItems?limit=1"
                answer = await self._authorized(destination, "GET", url, None)
                alive = 200 <= answer.status < 300
            else:
                token = self._env.get(destination.token_env)
                if not token:
                    raise _Failed(None, f"environment variable {destination.token_env} is not set")
                empty = Envelope(sensor=destination.sensor, sendTime=datetime.now(UTC), data=[])
                answer = await self._call("POST", destination.endpoint, encode_envelope(empty), token)
                alive = 200 <= answer.status < 300 or answer.status in (400, 422)
        except (TokenFailure, _Failed) as failure:
            return Outcome(status=failure.status, latency_ms=_since(started), error=failure.error)
        if alive:
            return Outcome(status=200, latency_ms=_since(started))
        return Outcome(status=answer.status, latency_ms=_since(started), error=_error("verify", answer))

    # -- OneRoster -----------------------------------------------------------------------------------

    async def _oneroster(self, destination: OneRosterDestination, write: OneRosterWrite) -> _Answer:
        base = destination.base_url.rstrip("/")
        known = (base, write.line_item.sourcedId) in self._known
        await self._ensure_line_item(destination, base, write)
        path = f"/results/{quote(write.result.sourcedId, safe='')}"
        body = encode(ResultBody(write.result))
        answer = await self._authorized(destination, "PUT", base + path, body)
        if answer.status in (404, 422) and known:
            # The line item this process created may be gone (deleted in the SIS): make it again, once.
            self._known.discard((base, write.line_item.sourcedId))
            await self._ensure_line_item(destination, base, write)
            answer = await self._authorized(destination, "PUT", base + path, body)
        if not 200 <= answer.status < 300:
            # The provider may have lost or refused the line item: look again next time.
            self._known.discard((base, write.line_item.sourcedId))
            raise _Failed(answer.status, _error("PUT " + path, answer), answer.retry_after)
        return answer

    async def _ensure_line_item(
        self, destination: OneRosterDestination, base: str, write: OneRosterWrite
    ) -> None:
        key = (base, write.line_item.sourcedId)
        if key in self._known:
            return
        async with self._ensuring.setdefault(key, asyncio.Lock()):
            if key in self._known:
                return
            path = f"/lineItems/{quote(write.line_item.sourcedId, safe='')}"
            found = await self._authorized(destination, "GET", base + path, None)
            if found.status == 404:
                created = await self._authorized(
                    destination, "PUT", base + path, encode(LineItemBody(write.line_item))
                )
                if not 200 <= created.status < 300:
                    raise _Failed(created.status, _error("PUT " + path, created), created.retry_after)
            elif not 200 <= found.status < 300:
                raise _Failed(found.status, _error("GET " + path, found), found.retry_after)
            if len(self._known) >= _KNOWN_LIMIT:
                self._known.clear()
            self._known.add(key)
        self._ensuring.pop(key, None)

    async def _authorized(
        self, destination: OneRosterDestination, method: str, url: str, body: bytes | None
    ) -> _Answer:
        token = await self.tokens.token(destination.oauth)
        answer = await self._call(method, url, body, token)
        if answer.status == 401:
            token = await self.tokens.refresh(destination.oauth, token)
            answer = await self._call(method, url, body, token)
        return answer

    # -- Caliper -------------------------------------------------------------------------------------

    async def _caliper(self, destination: CaliperDestination, write: CaliperWrite) -> _Answer:
        token = self._env.get(destination.token_env)
        if not token:
            raise _Failed(None, f"environment variable {destination.token_env} is not set")
        answer = await self._call("POST", destination.endpoint, encode_envelope(write.envelope), token)
        if not 200 <= answer.status < 300:
            raise _Failed(answer.status, _error("POST", answer), answer.retry_after)
        return answer

    # -- one call ------------------------------------------------------------------------------------

    async def _call(self, method: str, url: str, body: bytes | None, token: str) -> _Answer:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._check_literal_address(url)
            with tracing.span(f"{method} {_template(url)}", tracing.CLIENT) as span:
                answer = await self._request(method, url, body, headers)
                tracing.answered(span, answer.status)
                return answer
        except TimeoutError:
            raise _Failed(None, f"{method} {urlsplit(url).path}: timeout") from None
        except ForbiddenAddress as error:
            raise _Failed(None, f"refused: {error}") from None
        except (aiohttp.ClientError, OSError) as error:
            raise _Failed(
                None, f"{method} {urlsplit(url).path}: {type(error).__name__}: {error}"[:500]
            ) from None

    async def _request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> _Answer:
        async with self._session.request(
            method, url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
        ) as response:
            text = await response.content.read(self._max)
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"))
                if response.status in _RETRY_AFTER_STATUSES
                else None
            )
            return _Answer(response.status, text, retry_after)

    def _check_literal_address(self, url: str) -> None:
        # aiohttp does not ask the resolver about an IP literal: check it here, as the poster does.
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        if not self._allow_private and is_forbidden(host):
            raise ForbiddenAddress(f"{host} is a forbidden address")


def _error(call: str, answer: _Answer) -> str:
    message = provider_message(answer.body) or answer.body[:200].decode("utf-8", "replace").strip()
    return f"{call}: HTTP {answer.status}" + (f": {message}" if message else "")


def _template(url: str) -> str:
    """A span's name: the path with the ids that vary per call folded (`PUT …/results/{sourcedId}`)."""
    path = urlsplit(url).path
    for collection, name in (("/results/", "results/{sourcedId}"), ("/lineItems/", "lineItems/{sourcedId}")):
        head, found, _ = path.rpartition(collection)
        if found:
            return f"{head}/{name}"
    return path


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
