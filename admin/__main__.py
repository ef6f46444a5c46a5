"""`python -m admin`: serve the admin API until SIGTERM or SIGINT."""

import asyncio
import sys
from collections.abc import Mapping

import aio_pika
import structlog
from aiohttp import web

from admin.app import create_app
from admin.settings import AdminSettings
from common.db import create_pool
from common.env import SettingError, process_env
from common.logs import configure_logging
from common.process import stop_on_signals, use_uvloop
from workers.delivery.broker import TaskPublisher, declare_attempts_queue

log = structlog.get_logger("admin")


async def serve(settings: AdminSettings) -> None:
    worker = settings.worker
    pool = await create_pool(worker)
    connection = await aio_pika.connect_robust(worker.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_attempts_queue(channel, worker.topology)
        tasks = TaskPublisher(channel, worker.topology, timeout=worker.publish_timeout)
        app = create_app(pool, tasks, token=settings.token, allow_private=settings.allow_private)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=worker.shutdown_timeout)
        await runner.setup()
        stop = stop_on_signals()
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
            if settings.token is None:
                log.warning("admin API running WITHOUT authentication (RESULTBUS_ADMIN_NO_AUTH)")
            log.info("admin API listening", host=settings.host, port=settings.port)
            await stop.wait()
            log.info("shutting down")
        finally:
            await runner.cleanup()
    finally:
        await connection.close()
        await pool.close()
    log.info("stopped")


def main(env: Mapping[str, str] | None = None) -> int:
    env = process_env() if env is None else env
    try:
        settings = AdminSettings.from_env(env)
    except SettingError as error:
        print(f"admin: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.worker.log_level, json=settings.log_json)
    use_uvloop()
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
