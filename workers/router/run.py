"""`python -m workers router`: raw queue -> PostgreSQL -> results exchange, until SIGTERM."""

import gc

import structlog

from common.broker import declare_raw, declare_results, declare_tiers, open_connection
from common.db import open_pool
from common.service import Service
from schemas.topology import tiers_ms
from workers.router.loop import Router
from workers.router.settings import RouterSettings

log = structlog.get_logger("router")


async def start_router(service: Service, settings: RouterSettings) -> None:
    # Every webhook allocates a few hundred short-lived objects and none of them form cycles worth
    # collecting often: move what start-up created out of the collector's way, and collect rarely.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # No session reset on release: the router never LISTENs, SETs, opens cursors or takes session
    # advisory locks, so asyncpg's reset query would be one more round trip per batch for nothing.
    pool = await open_pool(service, settings, reset_sessions=False)
    connection = await open_connection(service, settings.amqp_url)
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=settings.prefetch)
    _, queue = await declare_raw(consuming, settings.topology)
    # on_return_raises: a deferral to a delay tier that does not exist must fail, not vanish.
    publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
    await declare_results(publishing, settings.topology)
    await declare_tiers(publishing, settings.topology.raw, tiers_ms(settings.retry_delays))
    # The router finishes the batch in hand when told to stop and returns the rest; what is still
    # unacked when the connection closes goes back to the queue: nothing is lost.
    service.run("router", Router(settings, pool, consuming, publishing).run)
    log.info("router consuming", queue=queue.name, prefetch=settings.prefetch, batch=settings.batch_size)
