"""`python -m workers delivery`: results exchange -> subscriber endpoints, until SIGTERM."""

import contextlib
import sys

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractRobustConnection

from common.broker import declare_results
from common.db import create_pool
from common.env import SettingError, process_env
from common.process import stop_on_signals
from common.settings import WorkerSettings
from subscribers.poster import Poster, subscriber_session
from workers.delivery.attempts import Attempts
from workers.delivery.broker import TaskPublisher, declare_attempts, declare_deliveries
from workers.delivery.consumer import TaskPerMessage
from workers.delivery.fanout import FanOut
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger("delivery")


class DeliveryWorker(contextlib.AbstractAsyncContextManager["DeliveryWorker"]):
    """Both consumers of one worker, on one broker connection and one HTTP client session."""

    def __init__(self, settings: WorkerSettings, delivery: DeliverySettings) -> None:
        self.settings = settings
        self.delivery = delivery
        self._stack = contextlib.AsyncExitStack()
        self._consumers: list[TaskPerMessage] = []
        self.pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> "DeliveryWorker":
        stack = self._stack
        topology = self.settings.topology
        self.pool = await create_pool(self.settings, size=8)
        stack.push_async_callback(self.pool.close)
        connection: AbstractRobustConnection = await aio_pika.connect_robust(self.settings.amqp_url)
        stack.push_async_callback(connection.close)
        session = subscriber_session(allow_private=self.delivery.allow_private, limit=self.delivery.in_flight)
        stack.push_async_callback(session.close)

        publishing = await connection.channel(publisher_confirms=True)
        results = await declare_results(publishing, topology)
        tasks = TaskPublisher(publishing, topology, timeout=self.settings.publish_timeout)

        fanout_channel = await connection.channel()
        await fanout_channel.set_qos(prefetch_count=64)
        deliveries = await declare_deliveries(fanout_channel, topology, results)
        attempts_channel = await connection.channel()
        await attempts_channel.set_qos(prefetch_count=self.delivery.in_flight)
        attempts_queue = await declare_attempts(attempts_channel, topology, self.delivery.schedule)

        poster = Poster(
            session,
            timeout=self.delivery.timeout,
            max_response_bytes=self.delivery.max_response_bytes,
            allow_private=self.delivery.allow_private,
        )
        self._consumers = [
            TaskPerMessage(deliveries, FanOut(self.pool, tasks).handle),
            TaskPerMessage(attempts_queue, Attempts(self.delivery, self.pool, poster, tasks, results).handle),
        ]
        for consumer in self._consumers:
            await consumer.start()
        log.info(
            "delivery consuming",
            queue=deliveries.name,
            attempts=attempts_queue.name,
            schedule=list(self.delivery.schedule.delays),
            per_endpoint=self.delivery.per_endpoint,
            in_flight=self.delivery.in_flight,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stop taking work first, let what is in hand finish, then close session, broker, pool.
        for consumer in self._consumers:
            await consumer.stop(self.settings.shutdown_timeout)
        await self._stack.aclose()


async def run_delivery(settings: WorkerSettings) -> None:
    try:
        delivery = DeliverySettings.from_env(process_env())
    except SettingError as error:
        print(f"resultbus: bad setting: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    stop = stop_on_signals()
    async with DeliveryWorker(settings, delivery):
        await stop.wait()
        log.info("shutting down")
    log.info("delivery stopped")
