"""The retry schedule and the delay tiers that hold retries in RabbitMQ.

Each distinct delay of the schedule is a queue whose TTL is that delay and whose dead-letter target
is the attempts queue. A task that must wait goes, with a `not_before` time, to the shortest tier
at least as long when that makes it no later than the jitter allows (`tier_to_wait`), else to the
longest tier not longer; a task that comes back early goes again for the rest. The first rule is what
makes a jittered retry one trip: a retry of 5 s jittered to 4.6 s went to the 1 s tier, and came back
four times, and one of 300 s jittered to 280 s made 56 trips through the 5 s tier. Queue TTLs rather
than per-message TTLs, because a message only expires at the head of its queue: one tier per delay
keeps every queue in expiry order.
"""

import random
from collections.abc import Sequence

import msgspec

from schemas.topology import delay_ms as _ms


class Schedule(msgspec.Struct, frozen=True):
    """`delays[n]` is the wait before attempt n+1 (delays[0]: before the first, normally 0)."""

    delays: tuple[float, ...]
    jitter: float = 0.1  # a retry waits between (1 - jitter) and 1 times its delay
    park: float = 1.0  # how long a task waits while its endpoint is busy
    # A subscriber's Retry-After is honoured up to this, so that a typo cannot park a delivery for a year.
    max_retry_after: float = 86400.0

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def tiers_ms(self) -> list[int]:
        return sorted({_ms(d) for d in (*self.delays[1:], self.park) if d > 0})

    def next_delay(self, step: int, retry_after: float | None, rng: random.Random) -> float | None:
        """The wait before the attempt after attempt `step`, or None when the schedule is exhausted."""
        if step + 1 >= len(self.delays):
            return None
        delay = self.delays[step + 1] * (1 - self.jitter * rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def tier_for(self, wait: float) -> int:
        """The tier (ms) to wait in: the longest not longer than `wait`, else the shortest."""
        tiers = self.tiers_ms()
        fitting = [t for t in tiers if t <= _ms(wait)]
        return fitting[-1] if fitting else tiers[0]

    def tier_to_wait(self, wait: float) -> int:
        """The tier (ms) for a task due in `wait` seconds: the shortest at least as long, if it is late
        by no more than `jitter` of its own length (the spread a jittered retry has anyway), so that
        the task is due when it comes back; else the longest not longer (`tier_for`)."""
        over = self.tier_over(wait)
        if _ms(wait) <= over and over * (1 - self.jitter) <= _ms(wait):
            return over
        return self.tier_for(wait)

    def tier_over(self, wait: float) -> int:
        """The tier (ms) to wait at least `wait` in: the shortest not shorter, else the longest."""
        tiers = self.tiers_ms()
        return next((t for t in tiers if t >= _ms(wait)), tiers[-1])


DEFAULT_SCHEDULE: Sequence[float] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
