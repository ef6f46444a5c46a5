"""`python -m admin`: the admin API (and its OpenAPI document), until SIGTERM or SIGINT."""

import asyncio
import sys
from collections.abc import Mapping

import structlog
from aiohttp import web

from admin import console
from admin.app import create_app
from admin.settings import SETTINGS, AdminSettings
from common import inventory, logs
from common.broker import open_connection
from common.db import open_pool
from common.env import process_env
from common.service import Service, serve
from subscribers.queues import TaskPublisher, declare_attempts_queue

log = structlog.get_logger("admin")


async def start_admin(service: Service, settings: AdminSettings) -> None:
    if settings.token is not None:
        logs.redact_values([settings.token])  # a library's line (a refused header) never shows it
    worker = settings.worker
    pool = await open_pool(service, worker)
    connection = await open_connection(service, worker.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await declare_attempts_queue(channel, worker.topology)
    tasks = TaskPublisher(channel, worker.topology, timeout=worker.publish_timeout)
    app = create_app(
        pool, tasks, token=settings.token, allow_private=settings.allow_private, ready=lambda: service.ready
    )
    # The delay tiers' names come from the workers' settings, read from the same environment.
    queues = inventory.queues(
        worker.topology,
        settings.raw_retry_delays,
        settings.delivery_schedule.tiers_ms(),
        inventory.itep_tiers_ms(process_env()),
    )
    console.attach_broker(app, connection, worker.topology, queues)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=service.process.shutdown_timeout)
    await runner.setup()
    service.on_close(runner.cleanup)
    await web.TCPSite(runner, settings.host, settings.port).start()

    async def listen(stopping: asyncio.Event) -> None:
        await stopping.wait()  # the listener closes with the resources (runner.cleanup above)

    service.run("http", listen)
    if settings.token is None:
        log.warning("admin API running WITHOUT authentication (RESULTBUS_ADMIN_NO_AUTH)")
    log.info("admin API listening", host=settings.host, port=settings.port)
    log.info("operator console", url=f"http://{settings.host}:{settings.port}{console.PREFIX}/")


def main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, *, prog: str | None = None
) -> int:
    return serve(
        "admin",
        description="The admin API: subscriptions, deliveries, exams, events, rejected webhooks, replay. "
        "OpenAPI at /openapi.json.",
        settings=SETTINGS,
        read_settings=AdminSettings.from_env,
        start=start_admin,
        argv=argv,
        env=env,
        prog=prog,
    )


if __name__ == "__main__":
    sys.exit(main())
