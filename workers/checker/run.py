"""`python -m workers checker`: verification rounds until SIGTERM. Safe to run several at once: each
endpoint is claimed by one of them per interval (see store.py)."""

import contextlib
from collections.abc import AsyncIterator, Mapping

import structlog

from common.broker import declare_results, open_connection
from common.db import open_pool
from common.service import Service, running
from common.settings import WorkerSettings
from gradebook.send import Sender
from subscribers.poster import Poster, subscriber_session
from workers.checker.checker import Checker
from workers.checker.clock import Clock, system_clock
from workers.checker.notify import Notifier
from workers.checker.settings import CheckerSettings

log = structlog.get_logger("checker")


async def build_checker(
    service: Service, settings: WorkerSettings, checker: CheckerSettings, clock: Clock = system_clock
) -> Checker:
    """A checker with its database pool, broker channel and HTTP session, closed with `service`."""
    # Recording a check takes a connection briefly; more than a few would only queue in Postgres.
    pool = await open_pool(service, settings, size=min(checker.concurrency, 8) + 1)
    connection = await open_connection(service, settings.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    results = await declare_results(channel, settings.topology)
    # One call per endpoint per interval: a kept-alive connection would only go stale.
    session = subscriber_session(
        allow_private=checker.allow_private, limit=checker.concurrency, keep_alive=False
    )
    service.on_close(session.close)
    poster = Poster(
        session,
        timeout=checker.timeout,
        max_response_bytes=checker.max_response_bytes,
        allow_private=checker.allow_private,
    )
    sender = Sender(
        session,
        timeout=checker.timeout,
        max_response_bytes=checker.max_response_bytes,
        allow_private=checker.allow_private,
    )
    notifier = Notifier(results, timeout=settings.publish_timeout)
    return Checker(checker, pool, poster, sender, notifier, clock=clock)


@contextlib.asynccontextmanager
async def open_checker(
    settings: WorkerSettings, checker: CheckerSettings, clock: Clock = system_clock
) -> AsyncIterator[Checker]:
    """A checker whose rounds the caller drives (tests), wired as `python -m workers checker` is."""
    built: list[Checker] = []

    async def start(service: Service, _: None) -> None:
        built.append(await build_checker(service, settings, checker, clock))

    async with running("checker", None, start):
        yield built[0]


async def start_checker(service: Service, settings: tuple[WorkerSettings, CheckerSettings]) -> None:
    worker, checker_settings = settings
    checker = await build_checker(service, worker, checker_settings)
    # A round that fails for the database or the broker is retried at the next poll; one that fails
    # otherwise (a missing migration, a bug) ends the task, and so the process, which is restarted.
    service.run("checker", checker.run)
    log.info(
        "checker running",
        interval=checker_settings.interval,
        timeout=checker_settings.timeout,
        failures=checker_settings.failures,
        concurrency=checker_settings.concurrency,
        poll=checker_settings.poll,
    )


def read_checker_settings(env: Mapping[str, str]) -> tuple[WorkerSettings, CheckerSettings]:
    return WorkerSettings.from_env(env), CheckerSettings.from_env(env)
