"""Idle, slow and too many connections at the ingress (issue 19, item 3), against a real
`python -m ingress` over real sockets: a connection that sends nothing and one that sends a header
byte at a time are closed once `RESULTBUS_HEADER_TIMEOUT` has passed, an idle one between requests
after `RESULTBUS_KEEPALIVE_TIMEOUT` (and not before), and beyond `RESULTBUS_MAX_CONNECTIONS` the one
idle the longest makes way, or the newcomer is answered 503 while every connection is in a request,
and the listener recovers once they are gone. Without the bounds aiohttp holds such connections for
an hour: each wait below has a deadline far shorter than that."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.env import SettingError
from ingress.settings import IngressSettings
from schemas.topology import Topology
from tests.support.real_ingress import RealIngress, closed_within, real_ingress

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: ingress\r\n\r\n"
SLACK = 5.0  # how late a closing may come on a loaded machine: far below aiohttp's hour


def test_the_bounds_are_settings_with_defaults_a_vendor_never_meets() -> None:
    limits = IngressSettings.from_env({}).connections
    assert (limits.header_timeout, limits.keepalive_timeout, limits.max_connections) == (10.0, 75.0, 1000)
    limits = IngressSettings.from_env(
        {
            "RESULTBUS_HEADER_TIMEOUT": "2s",
            "RESULTBUS_KEEPALIVE_TIMEOUT": "0",
            "RESULTBUS_MAX_CONNECTIONS": "50",
        }
    ).connections
    assert (limits.header_timeout, limits.keepalive_timeout, limits.max_connections) == (2.0, 0.0, 50)
    for name, bad in [
        ("RESULTBUS_HEADER_TIMEOUT", "0"),
        ("RESULTBUS_KEEPALIVE_TIMEOUT", "soon"),
        ("RESULTBUS_MAX_CONNECTIONS", "0"),
    ]:
        with pytest.raises(SettingError, match=name):
            IngressSettings.from_env({name: bad})


async def _response(reader: asyncio.StreamReader) -> bytes:
    """One small response (a /healthz answer) read whole."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1]
    )
    return head + await reader.readexactly(length)


@pytest.fixture
async def ingress(amqp_url: str, topology: Topology, tmp_path: Path) -> AsyncIterator[RealIngress]:
    async with real_ingress(
        amqp_url, topology, tmp_path, RESULTBUS_HEADER_TIMEOUT="1s", RESULTBUS_KEEPALIVE_TIMEOUT="5s"
    ) as running:
        yield running


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    ingress: RealIngress,
) -> None:
    reader, writer = await ingress.connect()
    took, data = await closed_within(reader, 1.0 + SLACK)
    assert data == b"" and took >= 0.8
    await ingress.metric_reaches("resultbus_http_connections_closed_total", 1, reason="header_timeout")
    writer.close()


async def test_a_slowloris_connection_is_closed_after_the_header_timeout_whatever_it_keeps_sending(
    ingress: RealIngress,
) -> None:
    reader, writer = await ingress.connect()
    request = b"POST /hooks/synap-main HTTP/1.1\r\nHost: ingress\r\nX-Padding: " + b"a" * 500

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in request:  # a byte every 0.2 s: 100 s of headers
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

    dripping = asyncio.create_task(drip())
    try:
        took, data = await closed_within(reader, 1.0 + SLACK)
    finally:
        dripping.cancel()
    assert data == b"" and took >= 0.8
    line = await ingress.line(
        lambda line: line.get("event") == "connection closed: headers not received in time"
    )
    assert line["received_bytes"] > 0 and line["level"] == "info"
    writer.close()


async def test_an_idle_connection_between_requests_lives_for_the_keepalive_then_is_closed(
    ingress: RealIngress,
) -> None:
    reader, writer = await ingress.connect()
    writer.write(HEALTHZ)
    assert (await _response(reader)).startswith(b"HTTP/1.1 200")
    # Idle twice the header timeout: the keep-alive, not the header timeout, applies between requests.
    await asyncio.sleep(2.0)
    writer.write(HEALTHZ)
    assert (await _response(reader)).startswith(b"HTTP/1.1 200")
    took, data = await closed_within(reader, 5.0 + SLACK)
    assert data == b"" and took >= 4.0
    assert await ingress.metric("resultbus_http_connections_closed_total", reason="header_timeout") == 0
    writer.close()


async def test_beyond_the_connection_limit_the_longest_idle_makes_way_or_the_newcomer_is_refused_then_it_recovers(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    async with real_ingress(
        amqp_url,
        topology,
        tmp_path,
        # Long timeouts: what closes a connection here is the limit alone.
        RESULTBUS_HEADER_TIMEOUT="60s",
        RESULTBUS_KEEPALIVE_TIMEOUT="60s",
        RESULTBUS_READ_TIMEOUT="60s",
        RESULTBUS_MAX_CONNECTIONS="4",
        # The limit is per process, and the kernel spreads connections among several: one here.
        RESULTBUS_INGRESS_PROCESSES="1",
    ) as ingress:
        # Four connections still sending their headers: the oldest makes way for a fifth.
        slow = [await ingress.connect() for _ in range(4)]
        for _, writer in slow:
            writer.write(b"GET /heal")
        await ingress.metric_reaches("resultbus_http_connections", 4, listener="ingress")
        reader, writer = await ingress.connect()
        writer.write(HEALTHZ)
        assert (await _response(reader)).startswith(b"HTTP/1.1 200")
        _, evicted = await closed_within(slow[0][0], SLACK)  # at once, not after a timeout
        assert evicted == b""
        assert await ingress.metric("resultbus_http_connections_closed_total", reason="evicted") == 1
        for _, w in [*slow, (reader, writer)]:
            w.close()
        await ingress.metric_reaches("resultbus_http_connections", 0, listener="ingress")

        # Four connections in a request (a body still on its way): a fifth is refused with a 503.
        busy = [await ingress.connect() for _ in range(4)]
        for _, writer in busy:
            writer.write(
                b"POST /hooks/synap-main HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"a":'
            )
        await ingress.metric_reaches("resultbus_http_connections", 4, listener="ingress")
        reader, writer = await ingress.connect()
        writer.write(HEALTHZ)
        _, refused = await closed_within(reader, SLACK)
        assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in refused
        assert refused.endswith(b'{"error": "too many connections"}')
        assert await ingress.metric("resultbus_http_connections_closed_total", reason="refused") == 1
        writer.close()
        warned = await ingress.line(lambda line: line.get("event", "").startswith("connection limit reached"))
        assert warned["level"] == "warning" and warned["max_connections"] == 4

        # Once they are gone, it answers again.
        for _, w in busy:
            w.close()
        await ingress.metric_reaches("resultbus_http_connections", 0, listener="ingress")
        reader, writer = await ingress.connect()
        writer.write(HEALTHZ)
        assert (await _response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()
