"""Resuming held gradebook results: every few seconds, the held deliveries whose candidate a mapping
released (crosswalk_db.resumable) are handed to `publish` (a delivery worker publishes their tasks),
then marked resumed. A release is a row, so none is lost while no worker runs, and a look that fails
(a database or broker outage) is made again by the next: no LISTEN connection, no NOTIFY."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog

from common.consumer import describe
from gradebook import crosswalk_db

log = structlog.get_logger("delivery")

EVERY = 2.0  # seconds between looks


async def resume_held(
    pool: asyncpg.Pool,
    publish: Callable[[Sequence[crosswalk_db.Resumable]], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    """A work task of the delivery service, until `stopping`."""
    while not stopping.is_set():
        try:
            async with pool.acquire() as conn:
                ready = await crosswalk_db.resumable(conn)
            await publish(ready)
            async with pool.acquire() as conn:
                await crosswalk_db.mark_resumed(conn, [r.delivery_id for r in ready])
            if ready:
                log.info("held deliveries resumed", deliveries=len(ready))
                continue  # there may be more
        except Exception as error:
            log.warning("could not resume held deliveries", error=describe(error))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EVERY):
                await stopping.wait()
