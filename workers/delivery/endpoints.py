"""The endpoints this worker is posting to: at most `limit` attempts in flight to each, and how each
is doing (health.py).

A task whose endpoint is at its limit waits here for a slot, briefly and behind at most a few others
per slot; only then is it parked in the broker. Parking every such task at once made a burst circle
through the park tier; waiting here is bounded, so a slow endpoint holds at most
limit * (1 + WAITERS_PER_SLOT) of the worker's prefetch, for at most `patience` each.
"""

import asyncio
import collections
import time

from workers.delivery import metrics
from workers.delivery.health import Admission, EndpointHealth

WAITERS_PER_SLOT = 4


class Endpoints:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._health: dict[str, EndpointHealth] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def health(self, endpoint: str) -> EndpointHealth:
        health = self._health.get(endpoint)
        if health is None:
            health = self._health[endpoint] = EndpointHealth(limit=self._limit)
        return health

    async def turn(self, endpoint: str, patience: float) -> Admission:
        """The endpoint's admission once it is below its limit (GO), or failing or hanging (SKIP);
        PARK if it is still at its limit after `patience`, too many tasks already wait for it, or
        every attempt in flight there has run longer than `patience` (slots that free that slowly are
        not worth waiting for)."""
        health = self.health(endpoint)
        waiting = self._waiting.setdefault(endpoint, collections.deque())
        deadline = time.monotonic() + patience
        try:
            while (admission := health.admit(now := time.monotonic())) is Admission.PARK:
                if len(waiting) >= self._limit * WAITERS_PER_SLOT or health.stuck_for(now) > patience:
                    return admission
                woken = asyncio.get_running_loop().create_future()
                waiting.append(woken)
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await woken
                except TimeoutError:
                    return Admission.PARK
                finally:
                    if not woken.done():
                        woken.cancel()
                        waiting.remove(woken)
            return admission
        finally:
            if not waiting:
                self._waiting.pop(endpoint, None)

    def started(self, endpoint: str) -> float:
        return self.health(endpoint).started(time.monotonic())

    def finished(self, endpoint: str, started: float, *, answered_below_500: bool) -> None:
        """An attempt is over: its slot goes to the oldest waiter; an idle, healthy endpoint is forgotten."""
        health = self.health(endpoint)
        now = time.monotonic()
        health.finished(started, now, answered_below_500=answered_below_500)
        metrics.ATTEMPT_SECONDS.observe(now - started)
        waiting = self._waiting.get(endpoint)
        while waiting:
            woken = waiting.popleft()
            if not woken.done():
                woken.set_result(None)
                break
        if health.idle and not self._waiting.get(endpoint):
            del self._health[endpoint]
