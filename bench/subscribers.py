"""Subscribers for the delivery bench, in a process of their own: one aiohttp server per port, each
stamping the arrival time of every `webhook-id` it is sent and answering 200 at once; optionally one
that accepts connections and never answers (a hanging endpoint). A control port reports.

`python -m bench.subscribers CONTROL_PORT [--hang PORT] [--fail PORT] [--by-webhook] LIVE_PORT...`
(`--fail`: one that answers 500 to everything; `--by-webhook`: arrivals keyed by the event body's
`webhook_id`, the id the ingress answered, instead of the `webhook-id` header, the event's id.)

Control: `GET /count` (distinct (webhook-id, port) arrivals), `GET /arrivals` (JSON list of
[webhook-id, port, unix time] of each first arrival), `POST /reset`.
"""

import argparse
import asyncio
import signal
import time

import msgspec
import uvloop
from aiohttp import web


class _Event(msgspec.Struct):
    webhook_id: str


class Arrivals:
    def __init__(self, *, by_webhook: bool = False) -> None:
        self.first: dict[tuple[str, int], float] = {}
        self.total = 0
        self.by_webhook = by_webhook
        self.decoder = msgspec.json.Decoder(_Event)

    def app(self, port: int) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            stamp = time.time()
            body = await request.read()
            self.total += 1
            key = (
                self.decoder.decode(body).webhook_id
                if self.by_webhook
                else request.headers.get("webhook-id", "")
            )
            self.first.setdefault((key, port), stamp)
            return web.Response()

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app

    def control(self) -> web.Application:
        async def count(request: web.Request) -> web.Response:
            return web.json_response({"count": len(self.first), "total": self.total})

        async def arrivals(request: web.Request) -> web.Response:
            rows = [[i, p, t] for (i, p), t in self.first.items()]
            return web.Response(body=msgspec.json.encode(rows), content_type="application/json")

        async def reset(request: web.Request) -> web.Response:
            self.first.clear()
            self.total = 0
            return web.json_response({})

        app = web.Application()
        app.router.add_get("/count", count)
        app.router.add_get("/arrivals", arrivals)
        app.router.add_post("/reset", reset)
        return app


def failing() -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


def hanging() -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # until the client gives up
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


async def serve(control: int, live: list[int], hang: int | None, fail: int | None, by_webhook: bool) -> None:
    arrivals = Arrivals(by_webhook=by_webhook)
    apps = [(control, arrivals.control()), *((p, arrivals.app(p)) for p in live)]
    if hang is not None:
        apps.append((hang, hanging()))
    if fail is not None:
        apps.append((fail, failing()))
    runners = []
    for port, app in apps:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.subscribers")
    parser.add_argument("control", type=int)
    parser.add_argument("live", type=int, nargs="+")
    parser.add_argument("--hang", type=int)
    parser.add_argument("--fail", type=int)
    parser.add_argument("--by-webhook", action="store_true")
    args = parser.parse_args()
    uvloop.run(serve(args.control, args.live, args.hang, args.fail, args.by_webhook))


if __name__ == "__main__":
    main()
