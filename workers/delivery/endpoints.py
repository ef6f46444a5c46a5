"""The endpoints this worker is posting to: at most `limit` attempts in flight to each, and how each
is doing (health.py).

A task whose endpoint is at its limit waits here for a slot, behind at most a few others per slot,
for as long as the endpoint keeps answering: a park costs the task a trip through the broker and the
park tier's wait (a second by default), so a healthy endpoint that is merely busy (a burst, or this
worker's own event loop running late) is waited for, not parked. A task is parked once too many wait
already, or when no attempt there has ended for `patience` (the endpoint is slow or hanging, and its
slots will not free soon). So a slow endpoint holds at most limit * (1 + WAITERS_PER_SLOT) of the
worker's prefetch, for at most about `patience` each.
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
        PARK if too many tasks already wait for it, every attempt in flight there has run longer than
        `patience`, or none ended for `patience` while this task waited (slots that free that slowly
        are not worth waiting for)."""
        health = self.health(endpoint)
        waiting = self._waiting.setdefault(endpoint, collections.deque())
        try:
            while (admission := health.admit(now := time.monotonic())) is Admission.PARK:
                if len(waiting) >= self._limit * WAITERS_PER_SLOT or health.stuck_for(now) > patience:
                    return admission
                woken = asyncio.get_running_loop().create_future()
                waiting.append(woken)
                try:
                    while not woken.done():  # its place kept while the endpoint answers others
                        await asyncio.wait((woken,), timeout=patience)
                        if not woken.done() and time.monotonic() - health.last_finished_at > patience:
                            return Admission.PARK  # nothing ended there while it waited
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
