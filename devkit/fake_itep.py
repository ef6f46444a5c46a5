"""A fake of iTEP's fulfillment API on 127.0.0.1, for tests and `make run`/`make demo`.

It checks the HMAC-SHA256 signature over the exact bytes received (in the header its settings name,
per GTX/STX group), assigns a test ID from an inventory of its own and answers it as JSON. Told so,
it times out (after assigning: the case a client must not answer with a second call), answers 5xx,
or answers an error text. Given a results webhook URL, it plays the exam too: a little later it
calls that webhook the way iTEP does (one form field `data`), Finished then Complete, with
`OID` = the registration's `trExternal_ID`.

Test IDs never repeat across starts (they count on from the start's time in microseconds), so a
restarted fake never hands out a test ID a database already holds. `make run` runs one on :8090.

    .venv/bin/python -m devkit.fake_itep --port 8091 --api-key demo-itep-api-key \\
        --results-url http://127.0.0.1:8080/hooks/itep-demo --results-user itep --results-password ...
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from devkit import samples

PATH = "/requests/ecommerce_webhook.php"
GTX_HEADER = "X-Itep-Gtx-Signature"  # the fake's own names: iTEP's are not public
STX_HEADER = "X-Itep-Stx-Signature"


@dataclass
class Assigned:
    test_id: str
    order: dict[str, Any]  # the request body as received

    @property
    def order_id(self) -> str | None:
        value = self.order.get("registration", {}).get("trExternal_ID")
        return value if isinstance(value, str) else None


@dataclass
class FakeItep:
    api_key: str
    gtx_header: str = GTX_HEADER
    stx_header: str = STX_HEADER
    encoding: str = "hex"
    results_url: str | None = None
    results_auth: tuple[str, str] | None = None
    results_after: float = 1.0
    # What the next calls do, one entry per call: "timeout", "5xx", or "error:<text>"; then "ok".
    plan: list[str] = field(default_factory=list)
    hang: float = 30.0  # how long a "timeout" call takes to answer
    assigned: list[Assigned] = field(default_factory=list)
    calls: int = 0
    refused: list[str] = field(default_factory=list)  # why calls were refused (signature, body)
    # Where this start's test IDs count from: its time, so that no two starts share one.
    first_number: int = field(default_factory=lambda: time.time_ns() // 1000)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        return app

    def _signature(self, body: bytes) -> str:
        digest = hmac.new(self.api_key.encode(), body, hashlib.sha256).digest()
        return digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        try:
            order = json.loads(body)
        except ValueError:
            return self._refuse("Invalid request body", 400)
        code = str(order.get("product-code", ""))
        header = self.stx_header if code.startswith("STX-") else self.gtx_header
        given = request.headers.get(header, "")
        if not hmac.compare_digest(given.encode(), self._signature(body).encode()):
            return self._refuse(f"Invalid signature in {header}", 401)
        if body != json.dumps(order, separators=(",", ":"), ensure_ascii=False).encode():
            return self._refuse("Request body is not compact JSON", 400)
        if not code.startswith(("GTX-", "STX-")) or not order.get("track"):
            return self._refuse(f"Invalid product code [{code}] or no track", 200)
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "5xx":
            return web.Response(status=503, text="Service temporarily unavailable")
        if step.startswith("error:"):
            return web.json_response({"status": "error", "error": step.removeprefix("error:")})
        test_id = f"{self.first_number + len(self.assigned)}B8AP"
        self.assigned.append(Assigned(test_id, order))
        if self.results_url:
            self._later(self._play_exam(test_id, order))
        if step == "timeout":
            await asyncio.sleep(self.hang)
        return web.json_response({"status": "success", "TestID": test_id, "Password": "51734"})

    def _refuse(self, reason: str, status: int) -> web.Response:
        self.refused.append(reason)
        return web.json_response({"status": "error", "error": reason}, status=status)

    def _later(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_exam(self, test_id: str, order: dict[str, Any]) -> None:
        oid = order.get("registration", {}).get("trExternal_ID", "")
        for status in ("Finished", "Complete"):
            await asyncio.sleep(self.results_after)
            await self.send_result(test_id, oid, status)

    async def send_result(self, test_id: str, oid: str, status: str) -> int:
        """Calls the results webhook as iTEP does; returns its HTTP status."""
        assert self.results_url is not None
        if status == "Finished":
            data = {"OID": oid, "TestID": test_id, "Status": "Finished"}
        else:
            data = samples.itep(status, test_id=test_id, OID=oid)
        body, content_type = samples.itep_multipart(data)
        headers = {"Content-Type": content_type}
        if self.results_auth:
            headers["Authorization"] = samples.basic(*self.results_auth)
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.results_url, data=body, headers=headers) as response,
        ):
            return response.status

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serving(fake: FakeItep, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serves `fake`; yields its endpoint URL."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://{host}:{bound}{PATH}"
    finally:
        await fake.close()
        await runner.cleanup()


async def _main(args: argparse.Namespace) -> None:
    fake = FakeItep(
        api_key=args.api_key,
        results_url=args.results_url,
        results_auth=(args.results_user, args.results_password) if args.results_user else None,
        results_after=args.results_after,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(fake, "127.0.0.1", args.port) as url:
            print(
                f"fake iTEP: {url} (signature headers {fake.gtx_header} / {fake.stx_header}, hex)", flush=True
            )
            await stop.wait()
    except OSError as error:
        if error.errno is None:
            raise
        # The usual cause: `make run` already runs a fake iTEP there.
        print(
            f"fake iTEP: cannot listen on 127.0.0.1:{args.port}: {os.strerror(error.errno)}"
            " (is `make run` running? it runs one on RESULTBUS_FAKE_ITEP_PORT, 8090 by default: use that one,"
            " or give another --port)",
            file=sys.stderr,
        )
        sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devkit.fake_itep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--results-url", help="results webhook to call, as iTEP's tracking code would")
    parser.add_argument("--results-user")
    parser.add_argument("--results-password")
    parser.add_argument("--results-after", type=float, default=1.0, help="seconds before each result")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
