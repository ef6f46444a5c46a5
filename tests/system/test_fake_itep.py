"""The fake iTEP (devkit/fake_itep.py) as `make run` and a newcomer start it: test IDs that never
repeat across starts, and a port already taken refused in one line."""

import json
import socket
import subprocess
import sys

import aiohttp

from devkit.fake_itep import GTX_HEADER, FakeItep, serving
from tests.support.paths import ROOT


async def order_test_id(http: aiohttp.ClientSession, fake: FakeItep, url: str) -> str:
    body = json.dumps({"product-code": "GTX-Academic", "track": "DEMO"}, separators=(",", ":")).encode()
    async with http.post(url, data=body, headers={GTX_HEADER: fake._signature(body)}) as response:
        answer = await response.json()
    assert answer["status"] == "success", answer
    return str(answer["TestID"])


async def test_test_ids_never_repeat_across_starts() -> None:
    given: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # two starts, each a fake of its own, as `python -m devkit.fake_itep` makes
            fake = FakeItep(api_key="k")
            async with serving(fake) as url:
                given += [await order_test_id(http, fake, url) for _ in range(3)]
    assert len(set(given)) == len(given), given
    assert all(test_id.endswith("B8AP") and test_id[:-4].isdigit() for test_id in given)


def test_a_port_already_taken_is_one_line_naming_make_run() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devkit.fake_itep", "--port", str(port), "--api-key", "k"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"127.0.0.1:{port}: Address already in use" in result.stderr and "make run" in result.stderr
