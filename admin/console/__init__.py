"""The operator console: server-rendered pages on the admin API's port, under /console.

    console.setup(app, pool, tasks, token=token)        # in admin.app.create_app
    console.attach_broker(app, connection, topology, ...)  # in admin.__main__, for queue depths and replays

See docs/console.md."""

import asyncpg
from aio_pika.abc import AbstractConnection
from aiohttp import web

from admin.console import auth
from admin.console.pages import Pages
from admin.console.queues import Broker
from admin.console.serving import (
    PREFIX,
    STATIC,
    Renderer,
    make_environment,
    make_middleware,
    security_headers,
)
from admin.replay import TaskSink
from common import inventory
from schemas.topology import Topology

__all__ = ["PREFIX", "attach_broker", "setup"]


class _Holder:
    broker: Broker | None = None

    def get(self) -> Broker | None:
        return self.broker


_HOLDER = web.AppKey("resultbus.console", _Holder)


def setup(
    app: web.Application,
    pool: asyncpg.Pool,
    tasks: TaskSink,
    *,
    token: str | None,
    allow_private: bool = False,
) -> None:
    """Mounts the console on `app` at /console, signed in by `token` (None: open, as the API is);
    `allow_private`: the address policy of test events, as the API's."""
    sessions = auth.Sessions(token)
    renderer = Renderer(make_environment())
    holder = _Holder()
    pages = Pages(pool, tasks, sessions, renderer, holder.get, allow_private=allow_private)
    console = web.Application(middlewares=[make_middleware(sessions, renderer)])
    console.router.add_get("/", pages.overview, allow_head=False)
    console.router.add_get("/login", pages.login_form, allow_head=False)
    console.router.add_post("/login", pages.login)
    console.router.add_post("/logout", pages.logout)
    console.router.add_get("/exams", pages.exams, allow_head=False)
    console.router.add_get("/exam", pages.exam, allow_head=False)
    console.router.add_get("/webhooks/{id}", pages.webhook, allow_head=False)
    console.router.add_get("/rejected", pages.rejected, allow_head=False)
    console.router.add_post("/rejected/replay", pages.replay_rejected)
    console.router.add_get("/replayed", pages.replayed, allow_head=False)
    console.router.add_get("/dead", pages.dead_letters, allow_head=False)
    console.router.add_post("/dead/replay", pages.replay_dead)
    console.router.add_get("/subscriptions", pages.subscriptions, allow_head=False)
    console.router.add_get("/subscriptions/{id}", pages.subscription, allow_head=False)
    console.router.add_post("/subscriptions/{id}/status", pages.set_status)
    console.router.add_post("/subscriptions/{id}/rotate", pages.rotate)
    console.router.add_post("/subscriptions/{id}/replay", pages.replay_failed)
    console.router.add_post("/subscriptions/{id}/test", pages.send_test_event)
    console.router.add_static("/static/", STATIC, append_version=False)

    async def to_console(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(PREFIX + "/")

    icon = (STATIC / "favicon.ico").read_bytes()

    async def favicon(request: web.Request) -> web.Response:
        # Browsers ask for it at the root of the site, whatever the page links: public, like /healthz.
        return web.Response(
            body=icon, content_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
        )

    app.router.add_get(PREFIX, to_console, allow_head=False)
    app.router.add_get("/favicon.ico", favicon)
    app.add_subapp(PREFIX, console)
    app.on_response_prepare.append(security_headers)
    app[_HOLDER] = holder


def attach_broker(
    app: web.Application, connection: AbstractConnection, topology: Topology, queues: list[inventory.Queue]
) -> None:
    """Gives the console the admin process's broker connection: without it the pages still work,
    but show no queue depths or dead letters and cannot replay webhooks."""
    app[_HOLDER].broker = Broker(connection, topology, queues)
