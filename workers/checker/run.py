"""`python -m workers checker`: verification rounds until SIGTERM. Safe to run several at once: each
endpoint is claimed by one of them per interval (see store.py)."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import aio_pika
import structlog

from common.broker import declare_results
from common.db import create_pool
from common.env import SettingError, process_env
from common.process import stop_on_signals
from common.settings import WorkerSettings
from subscribers.poster import Poster, subscriber_session
from workers.checker.checker import Checker
from workers.checker.clock import Clock, system_clock
from workers.checker.notify import Notifier
from workers.checker.settings import CheckerSettings

log = structlog.get_logger("checker")


@contextlib.asynccontextmanager
async def open_checker(
    settings: WorkerSettings, checker: CheckerSettings, clock: Clock = system_clock
) -> AsyncIterator[Checker]:
    """A checker with its database pool, broker channel and HTTP session; all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        # Recording a check takes a connection briefly; more than a few would only queue in Postgres.
        pool = await create_pool(settings, size=min(checker.concurrency, 8) + 1)
        stack.push_async_callback(pool.close)
        connection = await aio_pika.connect_robust(settings.amqp_url)
        stack.push_async_callback(connection.close)
        channel = await connection.channel(publisher_confirms=True)
        results = await declare_results(channel, settings.topology)
        # One call per endpoint per interval: a kept-alive connection would only go stale.
        session = subscriber_session(
            allow_private=checker.allow_private, limit=checker.concurrency, keep_alive=False
        )
        stack.push_async_callback(session.close)
        poster = Poster(
            session,
            timeout=checker.timeout,
            max_response_bytes=checker.max_response_bytes,
            allow_private=checker.allow_private,
        )
        yield Checker(checker, pool, poster, Notifier(results, timeout=settings.publish_timeout), clock=clock)


async def run_checker(settings: WorkerSettings) -> None:
    try:
        checker_settings = CheckerSettings.from_env(process_env())
    except SettingError as error:
        print(f"resultbus: bad setting: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    stop = stop_on_signals()
    async with open_checker(settings, checker_settings) as checker:
        log.info(
            "checker running",
            interval=checker_settings.interval,
            timeout=checker_settings.timeout,
            failures=checker_settings.failures,
            concurrency=checker_settings.concurrency,
            poll=checker_settings.poll,
        )
        task = asyncio.create_task(checker.run(stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            # Not a transient failure (those are retried at the next poll): a missing migration, a
            # bug. Exit with it rather than live on without checking.
            stopping.cancel()
            task.result()
        log.info("shutting down")
        # A round in hand finishes (its calls are bounded by the timeout); past the limit it is
        # cancelled, and the endpoints it claimed are checked again one interval later.
        try:
            await asyncio.wait_for(task, settings.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown timeout reached, cancelling the round in hand")
    log.info("checker stopped")
