"""The gradebook's part in a delivery attempt (workers/delivery/): what one stored result event
becomes for a gradebook destination, and the resumption of the results held for the crosswalk.

`prepare` looks the candidate up (crosswalk_db.lookup) and answers plan.py's choice: nothing to write
(`Skip`), a `Hold` (a candidate the crosswalk does not know yet: the delivery worker writes it with
crosswalk_db.hold), or a `GradebookWrite` for send.py.

`resume_held` looks every few seconds for the held deliveries whose candidate a mapping released
(crosswalk_db.resumable), hands them to `publish` (the delivery worker publishes their tasks), then
marks them resumed. A release is a row, so none is lost while no worker runs, and a look that fails
(a database or broker outage) is made again by the next: no LISTEN connection, no NOTIFY.
"""

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from common.consumer import describe
from gradebook import crosswalk_db
from gradebook.config import Destination, decode_destination
from gradebook.crosswalk import Row, Unmapped
from gradebook.plan import Skip, Write, plan
from schemas.event import ResultEvent

log = structlog.get_logger("delivery")

RESUME_EVERY = 2.0  # seconds between looks for held deliveries a mapping released

# Configurations change rarely: each is decoded once per process (a bounded cache). Raises
# msgspec.MsgspecError or ValueError for one that is not a destination.
destination = functools.lru_cache(maxsize=1024)(decode_destination)


class GradebookWrite(msgspec.Struct, frozen=True):
    destination: Destination
    write: Write


class Hold(msgspec.Struct, frozen=True):
    """A gradebook result whose candidate the crosswalk cannot map yet: held until a mapping comes."""

    reason: str
    event: ResultEvent
    seen: Row | None  # the crosswalk's row for the candidate, as the look-up found it


async def prepare(pool: asyncpg.Pool, event: ResultEvent, to: Destination) -> GradebookWrite | Skip | Hold:
    async with pool.acquire() as conn:
        found = await crosswalk_db.lookup(conn, event)
    match plan(event, to, found, now=datetime.now(UTC)):
        case Skip() as skip:
            return skip
        case Unmapped(reason):
            return Hold(reason, event, found.row)
        case write:
            return GradebookWrite(to, write)


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
            async with asyncio.timeout(RESUME_EVERY):
                await stopping.wait()
