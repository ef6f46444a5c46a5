"""The router's quick retries: a step that failed for a TRANSIENT reason (a failover, a dropped
connection) tried again in this process after each pause of `RESULTBUS_QUICK_RETRIES`, before the
broker's delay tiers take the webhooks over."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from common.errors import TRANSIENT

log = structlog.get_logger("router")

T = TypeVar("T")


async def quickly_retried(
    attempt: Callable[[], Awaitable[T]],
    pauses: Sequence[float],
    *,
    stop: asyncio.Event | None = None,
    failing: str | None = None,
    **fields: object,
) -> T:
    """What `attempt()` returns, once one of them succeeds: tried again after each of `pauses` while
    it fails for a TRANSIENT reason and `stop` is not set; the last failure is raised. `failing`:
    what the warning before each retry names ("storing failed, retrying")."""
    for pause in pauses:
        try:
            return await attempt()
        except TRANSIENT as error:
            if stop is not None and stop.is_set():
                raise
            if failing is not None:
                log.warning(f"{failing} failed, retrying", error=repr(error), delay=pause, **fields)
            await asyncio.sleep(pause)
    return await attempt()
