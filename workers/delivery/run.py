"""`python -m workers delivery`: results exchange -> subscriber endpoints, until SIGTERM."""

import functools
import random
from collections.abc import Mapping

import structlog

from common.broker import declare_results, open_connection
from common.consumer import Consumer, DeadLetters
from common.db import connect, open_pool
from common.service import Service
from common.settings import WorkerSettings
from gradebook.delivering import resume_held
from gradebook.send import Sender
from subscribers.poster import Poster, subscriber_session
from subscribers.queues import TaskPublisher, declare_attempts, declare_deliveries
from workers.delivery import store
from workers.delivery.attempts import Attempts
from workers.delivery.destinations import Destinations
from workers.delivery.fanout import FanOut
from workers.delivery.settings import DeliverySettings

log = structlog.get_logger("delivery")

# Events in hand at once: each is one short transaction and a few publishes.
FANOUT_PREFETCH = 32


async def start_delivery(service: Service, settings: tuple[WorkerSettings, DeliverySettings]) -> None:
    """Two consumers on one broker connection and one HTTP client session: fan-out and attempts."""
    worker, delivery = settings
    topology = worker.topology
    pool = await open_pool(service, worker, size=6, reset_sessions=False, custom_plans=True, warm=store.warm)
    # A pool of its own for the fan-out: a burst of events in hand (its prefetch) would otherwise take
    # every connection, and the attempts' claims and records (what a subscriber is waiting on) queue
    # behind the creation of deliveries that cannot go before them anyway.
    fanout_pool = await open_pool(
        service, worker, size=3, reset_sessions=False, custom_plans=True, warm=store.warm
    )
    connection = await open_connection(service, worker.amqp_url)
    worker_key = await hold_worker_lock(service, worker)
    session = subscriber_session(allow_private=delivery.allow_private, limit=delivery.in_flight)
    service.on_close(session.close)

    publishing = await connection.channel(publisher_confirms=True)
    results = await declare_results(publishing, topology)
    tasks = TaskPublisher(publishing, topology, timeout=worker.publish_timeout)
    dead = DeadLetters(publishing, topology.delivery_dead_queue, timeout=worker.publish_timeout)

    fanout_channel = await connection.channel()
    await fanout_channel.set_qos(prefetch_count=FANOUT_PREFETCH)
    deliveries = await declare_deliveries(fanout_channel, topology, results)
    attempts_channel = await connection.channel()
    await attempts_channel.set_qos(prefetch_count=delivery.in_flight)
    attempts_queue = await declare_attempts(attempts_channel, topology, delivery.schedule)

    poster = Poster(
        session,
        timeout=delivery.timeout,
        max_response_bytes=delivery.max_response_bytes,
        allow_private=delivery.allow_private,
    )
    sender = Sender(
        session,
        timeout=delivery.timeout,
        max_response_bytes=delivery.max_response_bytes,
        allow_private=delivery.allow_private,
    )
    destinations = Destinations(pool, poster, sender)
    if service.process.shutdown_timeout < delivery.timeout:
        log.warning(
            "RESULTBUS_SHUTDOWN_TIMEOUT is shorter than RESULTBUS_DELIVERY_TIMEOUT: a deploy may cut an"
            " attempt short (recorded and retried)",
            shutdown_timeout=service.process.shutdown_timeout,
            delivery_timeout=delivery.timeout,
        )
    attempts = Attempts(
        delivery,
        pool,
        destinations,
        tasks,
        results,
        drain=service.process.shutdown_timeout,
        worker=worker_key,
    )
    service.run("fan-out", Consumer("fan-out", deliveries, FanOut(fanout_pool, tasks).handle, dead).run)
    service.run("attempts", Consumer("attempts", attempts_queue, attempts.handle, dead).run)
    service.run("attempts in flight at shutdown", attempts.stop)
    service.run("held gradebook results", functools.partial(resume_held, pool, attempts.resume))
    log.info(
        "delivery consuming",
        queue=deliveries.name,
        attempts=attempts_queue.name,
        schedule=list(delivery.schedule.delays),
        per_endpoint=delivery.per_endpoint,
        in_flight=delivery.in_flight,
    )


async def hold_worker_lock(service: Service, settings: WorkerSettings) -> int:
    """A key of this worker's, locked on a connection of its own for the worker's life: the claims it
    makes carry it, and a claim is taken over only once its worker's lock is free (store.py)."""
    conn = await connect(settings)
    service.on_close(conn.close)
    while True:
        key = random.randrange(1, 2**31)
        if await conn.fetchval("SELECT pg_try_advisory_lock(delivery_worker_lock_class(), $1)", key):
            return key


def read_delivery_settings(env: Mapping[str, str]) -> tuple[WorkerSettings, DeliverySettings]:
    return WorkerSettings.from_env(env), DeliverySettings.from_env(env)
