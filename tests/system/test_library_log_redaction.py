"""Credentials never reach a log or an answer through a library (issue 19, item 5). A credential
header with one invalid byte makes aiohttp's parser refuse the request; aiohttp alone quotes the line
back in its 400 and prints it, with a traceback, through its unconfigured logger. Against a real
`python -m ingress` at DEBUG: the 400 is short JSON without the header, stderr holds the secret in
no form, and the refusal is one warning line. The libraries' loggers (aiohttp, asyncio, aio-pika,
aiormq, asyncpg) write through ours, redacted: tested without I/O too."""

import asyncio
import base64
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from common import logs
from schemas.topology import Topology
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.real_ingress import closed_within, real_ingress
from tests.support.services import DATABASE_URL

PASSWORD = "Pw-of-itep-4711-example"
TOKEN = "tok-of-itep-0815-example"
BASIC = base64.b64encode(f"itep:{PASSWORD}".encode()).decode()
SECRETS = [PASSWORD, TOKEN, BASIC]
SOURCES = """
[[source]]
id = "itep-basic"
vendor = "itep"
[source.auth]
kind = "basic"
username = "itep"
password_env = ["T_ITEP_PASSWORD"]

[[source]]
id = "itep-token"
vendor = "itep"
[source.auth]
kind = "header_token"
header = "X-Partner-Key"
token_env = ["T_ITEP_TOKEN"]
"""
FORM = b"data=%7B%7D"


def _request(path: str, header: bytes, request_line_tail: bytes = b"") -> bytes:
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1"
        + request_line_tail
        + b"\r\nHost: ingress\r\n"
        + header
        + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(FORM) + FORM
    )


REFUSED = {
    "Basic credentials, a control byte": _request(
        "/hooks/itep-basic", f"Authorization: Basic {BASIC}\x01".encode()
    ),
    "Basic credentials, DEL": _request("/hooks/itep-basic", f"Authorization: Basic {BASIC}\x7f".encode()),
    "a token, a control byte": _request("/hooks/itep-token", f"X-Partner-Key: {TOKEN}\x01".encode()),
    "a token in the header's name": _request("/hooks/itep-token", f"X-Partner\x01Key: {TOKEN}".encode()),
    "a token in the query, a bad request line": _request(
        f"/hooks/itep-token?key={TOKEN}", b"X-Partner-Key: x", request_line_tail=b"\x01"
    ),
}


async def test_a_refused_credential_header_is_answered_and_logged_without_it(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    async with real_ingress(
        amqp_url,
        topology,
        tmp_path,
        sources=SOURCES,
        RESULTBUS_LOG_LEVEL="DEBUG",
        T_ITEP_PASSWORD=PASSWORD,
        T_ITEP_TOKEN=TOKEN,
    ) as ingress:
        for label, request in REFUSED.items():
            reader, writer = await ingress.connect()
            writer.write(request)
            _, answer = await closed_within(reader, 10)
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b" 400 " in head.split(b"\r\n")[0], (label, answer)
            error = json.loads(body)["error"]
            assert error.startswith("malformed request"), (label, error)
            for secret in SECRETS:
                assert secret.encode() not in answer, (label, secret)
        # The credentials are right: sent as they should be, they are accepted.
        reader, writer = await ingress.connect()
        writer.write(_request("/hooks/itep-basic", f"Authorization: Basic {BASIC}".encode()))
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()

        refusals = [line for line in ingress.lines() if line.get("outcome") == "malformed_http"]
        await ingress.metric_reaches(
            "resultbus_ingress_requests_total", len(REFUSED), source="-", status="400"
        )
        await asyncio.sleep(0.2)  # whatever else it logs about them has been written
        stderr = ingress.stderr.read_text()
    assert len(refusals) == len(REFUSED)
    assert all(line["level"] == "warning" and "exception" not in line for line in refusals)
    for secret in SECRETS:
        assert secret not in stderr, secret
    assert "Error handling request" not in stderr and "Traceback" not in stderr


ADMIN_TOKEN = "admin-token-of-the-example-0123456789"


async def test_the_admin_process_writes_aiohttps_own_refusal_through_its_logs_redacted(
    amqp_url: str,
    topology: Topology,
    migrated: str,
    tmp_path: Path,
) -> None:
    """The admin listener is aiohttp's own: its parser's refusal is logged by the `aiohttp.server`
    logger, with the header line quoted. That record is one JSON line of the admin's, redacted."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_URL=amqp_url,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=migrated,
        RESULTBUS_ADMIN_PORT=str(port),
        RESULTBUS_ADMIN_TOKEN=ADMIN_TOKEN,
        RESULTBUS_LOG_JSON="1",
    )
    stderr = tmp_path / "admin.stderr"
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "admin", env=env, cwd=ROOT, stdout=sink, stderr=sink
        )
    try:
        async with asyncio.timeout(30):
            while "admin API listening" not in stderr.read_text():
                assert process.returncode is None, stderr.read_text()
                await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/subscriptions HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\x01\r\n\r\n".encode()
        )
        await closed_within(reader, 10)
        writer.close()
        async with asyncio.timeout(10):
            while '"logger":"aiohttp.server"' not in stderr.read_text():
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await process.wait()
    text = stderr.read_text()
    assert ADMIN_TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is ours: JSON
    [refusal] = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert "Authorization: [redacted]" in refusal["exception"]


# -- the libraries' loggers, without I/O --------------------------------------------------------------


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure_logging("INFO", json=True, stream=out)
    try:
        yield out
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler).__module__ == "common.logs":
                root.removeHandler(handler)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(text) for text in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    "name", ["aiohttp.server", "aiohttp.client", "asyncio", "aio_pika", "aiormq", "asyncpg"]
)
def test_every_library_logger_writes_through_ours_with_credentials_redacted(
    name: str, written: io.StringIO
) -> None:
    try:
        raise ValueError(
            f"400, message:\n  Invalid header value char:\n\n    b'Authorization: Basic {BASIC}\\x01'"
        )
    except ValueError as error:
        logging.getLogger(name).error("Error handling request from %s", "203.0.113.9", exc_info=error)
    logging.getLogger(name).warning("retrying amqp://resultbus:%s@broker.example:5672/", PASSWORD)
    logging.getLogger(name).debug("below the level: not written")
    [failed, retrying] = _lines(written)
    assert (failed["logger"], failed["level"], failed["event"]) == (
        name,
        "error",
        "Error handling request from 203.0.113.9",
    )
    assert "Authorization: [redacted]" in str(failed["exception"]) and BASIC not in str(failed["exception"])
    assert retrying["event"] == "retrying amqp://resultbus:***@broker.example:5672/"


def test_known_secrets_are_redacted_wherever_they_stand(written: io.StringIO) -> None:
    logs.redact_values([TOKEN])
    logging.getLogger("aiohttp.web").warning("odd value %r in frame", TOKEN.encode())
    [line] = _lines(written)
    assert line["logger"] == "aiohttp.web" and TOKEN not in written.getvalue()


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"b'Authorization: Basic {BASIC}\\x01'", "b'Authorization: [redacted]\\x01'"),
        (f"b'X-Partner-Key: {TOKEN}\\x7f'", "b'X-Partner-Key: [redacted]\\x7f'"),
        (f"Proxy-Authorization: Bearer {TOKEN}", "Proxy-Authorization: [redacted]"),
        (f"GET /hook?api_key={TOKEN}&page=2", "GET /hook?api_key=[redacted]&page=2"),
        (f"sent Bearer {TOKEN} again", "sent Bearer [redacted] again"),
        ("postgresql://app:pw-4711@db.example/x", "postgresql://app:***@db.example/x"),
        ("KeyError: 'id'", "KeyError: 'id'"),  # an exception's name is not a header
        ("Content-Length: 10", "Content-Length: 10"),
    ],
)
def test_redaction_of_credential_looking_values(text: str, redacted: str) -> None:
    assert logs.redact(text) == redacted
