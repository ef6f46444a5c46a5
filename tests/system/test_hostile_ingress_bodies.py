"""Hostile bodies at the edge (issue 8): a real `python -m ingress` process, the Testpress bodies it
must parse to check their hash and the Inspera bodies it reads for the verification ping, mutated the
ways a broken or malicious sender would. Every answer is a 4xx with a short JSON error, never a 500,
and the process answers valid calls afterwards."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.hostile import hostile_payload
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.signed_bodies import (
    DEMO_PRIVATE,
    INSPERA_EVENT,
    INSPERA_PING,
    TESTPRESS_COMPLETED,
    inspera_headers,
    signed_testpress_body,
)

SOURCES = """
[[source]]
id = "testpress-main"
vendor = "testpress"
[source.auth]
kind = "testpress_hash"
private_key_env = ["T_TESTPRESS_KEY"]

[[source]]
id = "inspera-main"
vendor = "inspera"
[source.auth]
kind = "inspera_signature"
secret_env = ["T_INSPERA_SECRET"]
"""
JSON = {"Content-Type": "application/json"}
VALID = signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE)


def _mutations(valid: bytes) -> dict[str, bytes]:
    return {
        "invalid utf-8 in a string": valid.replace(b'"ada.example"', b'"ada\xff\xfe"'),
        "invalid utf-8 in the key": valid.replace(b'"key": "', b'"key": "\xc3\x28', 1),
        "invalid utf-8 in a key name": valid.replace(b'"key"', b'"k\xffey"', 1),
        "truncated": valid[: len(valid) // 2],
        "empty": b"",
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "deep objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        # Found by the property test below: msgspec skips an unknown field by recursing into it.
        "deep nesting in an unsigned field": valid.replace(
            b'"username": "', b'"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b', "username": "', 1
        ),
        "huge number": valid.replace(b'"attempt_id": 130', b'"attempt_id": ' + b"9" * 5000, 1),
        "huge exponent": valid.replace(b'"attempt_id": 130', b'"attempt_id": 1e999999', 1),
        "NaN": valid.replace(b'"attempt_id": 130', b'"attempt_id": NaN', 1),
        "Infinity": valid.replace(b'"attempt_id": 130', b'"attempt_id": -Infinity', 1),
        "BOM": b"\xef\xbb\xbf" + valid,
        "NUL byte": valid.replace(b'"ada.example"', b'"ada\x00"'),
        "escaped NUL": valid.replace(b'"ada.example"', b'"ada\\u0000"'),
        "lone surrogate": valid.replace(b'"ada.example"', b'"ada\\ud800"'),
        "hash field an object": valid.replace(b'"attempt_id": 130', b'"attempt_id": {"a": 1}', 1),
        "hash field a list": valid.replace(b'"attempt_id": 130', b'"attempt_id": [130]', 1),
        "hash field null": valid.replace(b'"attempt_id": 130', b'"attempt_id": null', 1),
        "hash field a bool": valid.replace(b'"attempt_id": 130', b'"attempt_id": true', 1),
        "hash a number": json.dumps({**json.loads(valid), "hash": 12}).encode(),
        "not an object": b"[1, 2, 3]",
        "a string": b'"hello"',
    }


TESTPRESS_MUTATIONS = _mutations(VALID)
# Mutations outside the fields the hash covers: the body is authentic, so the ingress may enqueue it
# as sent (the router then stores it as rejected, with the reason); a 4xx is fine too, a 500 never.
OUTSIDE_THE_HASH = {"invalid utf-8 in a string", "NUL byte", "escaped NUL", "lone surrogate"}
INSPERA_MUTATIONS = {
    "ping with invalid utf-8": INSPERA_PING.replace(b"event=verification", b"event=verification\xff"),
    "ping truncated": INSPERA_PING[:20],
    "ping with NUL": INSPERA_PING.replace(b"contextObjectId=0", b"contextObjectId=\x00"),
    "ping deep": b"{" * 100_000 + b"event=verification" + b"}" * 100_000,
    "ping with BOM": b"\xef\xbb\xbf" + INSPERA_PING,
    "event with invalid utf-8": INSPERA_EVENT.replace(b"QUESTION_SET", b"QUESTION\xff"),
    "event deep": b"[" * 100_000 + b"]" * 100_000,
    "event NaN": INSPERA_EVENT.replace(b"1357554", b"NaN"),
}


class Ingress:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http

    async def post(self, source: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self.http.post(f"{self.base}/hooks/{source}", data=body, headers=headers) as response:
            return response.status, await response.read()

    async def assert_refused(self, source: str, body: bytes, headers: dict[str, str], label: str) -> None:
        status, answer = await self.post(source, body, headers)
        assert 400 <= status < 500, f"{label}: {status} {answer[:200]!r}"
        assert len(answer) < 1024, f"{label}: a long answer"
        error = json.loads(answer)
        assert isinstance(error, dict) and isinstance(error.get("error"), str), f"{label}: {answer!r}"

    async def assert_still_answering(self) -> None:
        status, answer = await self.post("testpress-main", VALID, JSON)
        assert status == 200, answer
        status, _ = await self.post("inspera-main", INSPERA_EVENT, inspera_headers(INSPERA_EVENT))
        assert status == 200


@pytest.fixture
async def ingress(amqp_url: str, topology: Topology, tmp_path: Path) -> AsyncIterator[Ingress]:
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_")}
    env.update(
        RESULTBUS_AMQP_URL=amqp_url,
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_SOURCES=str(sources),
        RESULTBUS_INGRESS_PORT=str(port),
        RESULTBUS_LOG_LEVEL="WARNING",
        T_TESTPRESS_KEY=DEMO_PRIVATE,
        T_INSPERA_SECRET="inspera-secret",
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "ingress", env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    try:
                        if (await http.get(f"{base}/readyz")).status == 200:
                            break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
            yield Ingress(base, http)
        assert process.returncode is None, "the ingress exited"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await process.wait()


async def test_hostile_testpress_and_inspera_bodies_get_a_4xx_never_a_500(ingress: Ingress) -> None:
    await ingress.assert_still_answering()
    for label, body in TESTPRESS_MUTATIONS.items():
        if label in OUTSIDE_THE_HASH:
            status, answer = await ingress.post("testpress-main", body, JSON)
            assert status == 200 or 400 <= status < 500, f"{label}: {status} {answer[:200]!r}"
            if status == 200:
                continue
        await ingress.assert_refused("testpress-main", body, JSON, label)
    for label, body in INSPERA_MUTATIONS.items():
        # Signed with the right secret too: the body itself must be refused, not its signature.
        for headers in (JSON, inspera_headers(body)):
            status, _ = await ingress.post("inspera-main", body, headers)
            if status == 200:  # a ping answered, or a signed body enqueued as it came: both fine
                continue
            await ingress.assert_refused("inspera-main", body, headers, label)
    await ingress.assert_still_answering()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=hostile_payload(Vendor.TESTPRESS), prefix=st.sampled_from([b"", b"\xef\xbb\xbf"]))
async def test_generated_hostile_testpress_bodies_are_never_a_500(
    ingress: Ingress, body: bytes, prefix: bytes
) -> None:
    status, answer = await ingress.post("testpress-main", prefix + body, JSON)
    assert status < 500, answer[:200]
    if status >= 400:
        assert isinstance(json.loads(answer).get("error"), str)
