"""One HTTP attempt: POST the body with its signature headers, and classify what came back.

Redirects are not followed (a 3xx is a failure: a subscriber must give the URL it serves), the
response body is read only up to a small limit, and the whole attempt has one deadline.
"""

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import msgspec
from yarl import URL

from common import tracing
from subscribers.endpoint import InvalidEndpoint, is_address, target
from subscribers.ssrf import ForbiddenAddress, GuardedResolver, is_forbidden

_USER_AGENT: Final = "resultbus-webhooks/1"
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    status: int | None  # None: no HTTP answer (timeout, connection error, refused address)
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


def subscriber_session(*, allow_private: bool, limit: int, keep_alive: bool = True) -> aiohttp.ClientSession:
    """An HTTP client for calling subscribers, who are strangers to us and to each other: the address
    policy checked at every connection, no cookies, no proxies from the environment, and no
    per-host limit (ours is per endpoint URL, and a dead endpoint must not hold up a live one on
    the same host)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=allow_private),
            limit=limit,
            limit_per_host=0,
            force_close=not keep_alive,
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


class Poster:
    def __init__(
        self, session: aiohttp.ClientSession, *, timeout: float, max_response_bytes: int, allow_private: bool
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_response_bytes = max_response_bytes
        self._allow_private = allow_private

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        if not tracing.ENABLED:
            return await self._post(url, body, headers)
        with tracing.span("POST", tracing.CLIENT, attributes={"server.address": _host(url)}) as span:
            # The subscriber may continue the trace: `traceparent` is not part of what is signed.
            outcome = await self._post(url, body, {**headers, **(tracing.headers() or {})})
            tracing.answered(
                span, outcome.status, None if outcome.ok else outcome.error or f"HTTP {outcome.status}"
            )
            return outcome

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()
        try:
            connect_to = self._target(url)
            async with self._session.post(
                connect_to,
                data=body,
                headers={**headers, "Content-Type": "application/json", "User-Agent": _USER_AGENT},
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                # Read a little (the subscriber may explain a failure), never a whole large page.
                text = await response.content.read(self._max_response_bytes)
                status = response.status
                retry_after = (
                    parse_retry_after(response.headers.get("Retry-After"))
                    if status in _RETRY_AFTER_STATUSES
                    else None
                )
        except TimeoutError:
            return Outcome(status=None, latency_ms=_since(started), error="timeout")
        except (InvalidEndpoint, ForbiddenAddress) as error:
            return Outcome(status=None, latency_ms=_since(started), error=f"refused: {error}")
        except (aiohttp.ClientError, OSError) as error:
            # The resolver's refusal arrives wrapped (a ClientConnectorError, "cannot connect"): the
            # attempt log says what it is, not that DNS failed.
            forbidden = _forbidden_cause(error)
            text_error = f"refused: {forbidden}" if forbidden else f"{type(error).__name__}: {error}"
            return Outcome(status=None, latency_ms=_since(started), error=text_error[:500])
        error_text = None
        if not 200 <= status < 300:
            error_text = f"HTTP {status}: {text[:200].decode('utf-8', 'replace')}"
        return Outcome(status=status, latency_ms=_since(started), error=error_text, retry_after=retry_after)

    def _target(self, url: str) -> URL:
        """The URL aiohttp is given, its host checked as aiohttp will connect to it (yarl's IDNA
        mapping, not `urlsplit`'s spelling). A name is checked by the resolver at connect time; an
        address literal never reaches the resolver, so it is checked here."""
        parsed, host = target(url)
        if not self._allow_private and is_address(host) and is_forbidden(host):
            raise ForbiddenAddress(f"{host} is a forbidden address")
        return parsed


def _forbidden_cause(error: BaseException) -> ForbiddenAddress | None:
    seen: BaseException | None = error
    for _ in range(5):  # os_error, then the cause chain; never a loop
        if seen is None:
            return None
        if isinstance(seen, ForbiddenAddress):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _host(url: str) -> str:
    """The host as written, for a span: never an error (a host yarl cannot decode is the attempt's
    outcome to report, not the tracing's)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
