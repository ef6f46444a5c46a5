"""A tiny subscriber endpoint for trying resultbus out: prints every delivery it receives and whether
its Standard Webhooks signature verifies. `make demo` runs one; on its own:

    .venv/bin/python -m devkit.receiver --port 9000 --secret whsec_...   # the secret the admin API gave

The check is written as a subscriber would write it (no resultbus code): HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>" with the key the secret encodes, any of the space-separated
`v1,` signatures may match, and the timestamp must be within five minutes of now.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Delivery:
    path: str
    webhook_id: str
    verified: bool
    why: str  # what failed, when not verified
    event: dict[str, object]


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """None when the signature verifies, else why not."""
    try:
        webhook_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
        signatures = headers["webhook-signature"].split()
    except KeyError as missing:
        return f"no {missing.args[0]} header"
    if not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE_SECONDS:
        return "timestamp missing or more than five minutes off"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    if any(hmac.compare_digest(s.removeprefix("v1,"), expected) for s in signatures if s.startswith("v1,")):
        return None
    return "signature does not match"


class Receiver:
    """An HTTP server on 127.0.0.1 answering 204 to every POST and handing each to `on_delivery`."""

    def __init__(self, secret: str | None, on_delivery: Callable[[Delivery], None]) -> None:
        self.secret = secret
        self._on_delivery = on_delivery
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        why = (
            "no secret given"
            if self.secret is None
            else verify(self.secret, request.headers, body, time.time())
        )
        try:
            event = json.loads(body)
        except ValueError:
            event = {"body": body[:200].decode("utf-8", "replace")}
        self._on_delivery(
            Delivery(request.path, request.headers.get("webhook-id", "-"), why is None, why or "", event)
        )
        return web.Response(status=204)

    async def start(self, port: int) -> int:
        """Listens on `port` (0: any free one); returns the port."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def delivery_line(delivery: Delivery) -> str:
    event = delivery.event
    exam = event.get("exam")
    key = exam.get("key") if isinstance(exam, dict) else None
    verdict = "signature verified" if delivery.verified else f"NOT VERIFIED ({delivery.why})"
    what = (
        f"{event.get('vendor', '?')}.{event.get('type', '?')}"
        if "vendor" in event
        else str(event.get("type"))
    )
    return f"{delivery.path} {what} exam={key or '-'} schema={event.get('schema', '-')} webhook-id={delivery.webhook_id}: {verdict}"


async def _main(port: int, secret: str | None) -> None:
    receiver = Receiver(secret, lambda d: print(delivery_line(d), flush=True))
    await receiver.start(port)
    print(f"receiving on http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.receiver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="the subscription's whsec_ secret, to verify signatures")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port, args.secret))


if __name__ == "__main__":
    main()
