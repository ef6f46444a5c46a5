"""Bodies that never fully arrive (issue 19, item 4), sent to a real `python -m ingress` over raw
sockets: fewer bytes than Content-Length then a close, a chunked body without its last chunk then a
close, either with the sending side shut first. The sender's fault: a 400 (or only the close, when
nobody is left to read it), counted as a 400, one warning line without a traceback; never a 500 nor
an error line. A body whose Content-Encoding does not decode is a 400 too."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.topology import Topology
from tests.support.real_ingress import RealIngress, closed_within, real_ingress

HEAD = b"POST /hooks/synap-main HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\n"
CUT_SHORT = {
    "Content-Length larger than what is sent": HEAD + b'Content-Length: 100\r\n\r\n{"meta": {',
    "chunked without its last chunk": HEAD + b'Transfer-Encoding: chunked\r\n\r\na\r\n{"meta": {\r\n',
}


@pytest.fixture
async def ingress(amqp_url: str, topology: Topology, tmp_path: Path) -> AsyncIterator[RealIngress]:
    async with real_ingress(amqp_url, topology, tmp_path, RESULTBUS_LOG_LEVEL="INFO") as running:
        yield running


@pytest.mark.parametrize("half_close", [False, True], ids=["closed", "write side shut"])
async def test_a_body_that_never_fully_arrives_is_the_clients_fault(
    ingress: RealIngress, half_close: bool
) -> None:
    for label, request in CUT_SHORT.items():
        reader, writer = await ingress.connect()
        writer.write(request)
        await writer.drain()
        # The handler is waiting for the rest when the connection goes.
        await ingress.metric_reaches("resultbus_http_connections", 1, listener="ingress")
        await asyncio.sleep(0.2)
        if half_close:
            writer.write_eof()
            _, answer = await closed_within(reader, 10)
            assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), (label, answer)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    await ingress.metric_reaches(
        "resultbus_ingress_requests_total", len(CUT_SHORT), source="synap-main", status="400"
    )
    lines = [line for line in ingress.lines() if line.get("event") in ("request", "request failed")]
    assert [line["outcome"] for line in lines] == ["IncompleteBody"] * len(CUT_SHORT)
    for line in lines:
        assert line["level"] == "warning" and line["status"] == 400
        assert "exception" not in line  # no traceback
    assert not [line for line in ingress.lines() if line.get("level") in ("error", "critical", "not-json")]
    assert await ingress.metric("resultbus_ingress_requests_total", status="500") == 0


async def test_a_body_whose_content_encoding_does_not_decode_is_a_400(ingress: RealIngress) -> None:
    reader, writer = await ingress.connect()
    writer.write(HEAD + b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!")
    _, answer = await closed_within(reader, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body) == {"error": "malformed body"}
    writer.close()
    line = await ingress.line(lambda line: line.get("outcome") == "MalformedBody")
    assert line["detail"] == "body: Can not decode content-encoding: gzip"
    # Nor does aiohttp's draining of the rest log an "Unhandled exception".
    await asyncio.sleep(0.3)
    assert not [line for line in ingress.lines() if line.get("level") in ("error", "critical", "not-json")]
