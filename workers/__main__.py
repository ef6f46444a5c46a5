"""`python -m workers router|delivery|checker|migrate`: one process per role, each its own container."""

import argparse
import asyncio
import gc
import sys
from collections.abc import Coroutine

import aio_pika
import structlog

from common.broker import declare_raw, declare_results, declare_retry_tiers
from common.db import connect, create_pool, ensure_database
from common.env import SettingError, process_env
from common.logs import configure_logging
from common.metrics import metrics_server
from common.process import stop_on_signals, use_uvloop
from common.settings import WorkerSettings
from workers import operator_cli
from workers.checker.run import run_checker
from workers.delivery.run import run_delivery
from workers.migrate import migrate
from workers.router.loop import Router

log = structlog.get_logger()


async def run_migrate(settings: WorkerSettings) -> None:
    await ensure_database(settings)
    conn = await connect(settings)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    log.info("migrations up to date", applied=applied)


async def run_router(settings: WorkerSettings) -> None:
    # Every webhook allocates a few hundred short-lived objects and none of them form cycles worth
    # collecting often: move what start-up created out of the collector's way, and collect rarely.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    stop = stop_on_signals()
    pool = await create_pool(settings)
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=settings.prefetch)
        _, queue = await declare_raw(consuming, settings.topology)
        # on_return_raises: a deferral to a delay tier that does not exist must fail, not vanish.
        publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_results(publishing, settings.topology)
        await declare_retry_tiers(publishing, settings.topology, settings.retry_delays)
        log.info("router consuming", queue=queue.name, prefetch=settings.prefetch)
        router = Router(settings, pool, consuming, publishing)
        task = asyncio.create_task(router.run(stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            # The loop died of a bug: exit (and be restarted) rather than linger without consuming.
            stopping.cancel()
            task.result()
        # Drain: the batch in hand is finished and the rest returned; past the timeout, cancel.
        try:
            await asyncio.wait_for(task, settings.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown timeout reached, cancelling the batch in hand")
    finally:
        # Closing the channel returns every unacked message to the queue: nothing is lost.
        await connection.close()
        await pool.close()
    log.info("router stopped")


COMMANDS = {
    "migrate": run_migrate,
    "router": run_router,
    "delivery": run_delivery,
    "checker": run_checker,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in sorted(COMMANDS):
        sub.add_parser(name)
    operator_cli.add_commands(sub)
    args = parser.parse_args(argv)
    env = process_env()
    try:
        settings = WorkerSettings.from_env(env)
    except SettingError as error:
        print(f"resultbus: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=_json_logs(env.get("RESULTBUS_LOG_JSON")))
    use_uvloop()
    if args.command in COMMANDS:
        asyncio.run(_with_metrics(COMMANDS[args.command](settings), settings))
    else:
        asyncio.run(operator_cli.run(settings, args))
    return 0


async def _with_metrics(role: Coroutine[None, None, None], settings: WorkerSettings) -> None:
    # The metrics port is per process: give each replica its own (compose maps it per service).
    async with metrics_server("0.0.0.0", settings.metrics_port):
        await role


def _json_logs(value: str | None) -> bool | None:
    return None if value is None else value.lower() in {"1", "true", "yes"}


if __name__ == "__main__":
    sys.exit(main())
