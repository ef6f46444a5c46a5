"""How an endpoint is doing, as seen by this worker: its admission, whether to POST to it now.

A dead or hanging endpoint must not cost the others anything. Tasks that find their endpoint at its
concurrency limit wait a moment in the broker (`park`); but when the endpoint is failing (its last
attempt timed out, could not connect or got a 5xx, a moment ago) or is hanging (at its limit with an
attempt running for longer than `slow_after`), its tasks are not attempted at all: they move on to
the next step of their retry schedule, recorded as such, instead of circling through the broker
every second. One attempt at a time still goes through now and then (`probe_every`), so a recovered
endpoint is noticed at once.
"""

from enum import Enum

import msgspec


class Admission(Enum):
    GO = "go"  # POST now
    PARK = "park"  # at its limit but healthy: wait a moment in the broker and come back
    SKIP = "skip"  # failing or hanging: not attempted, on to the next retry step


class EndpointHealth(msgspec.Struct):
    limit: int  # attempts in flight at once
    slow_after: float = 5.0  # well under the 15 s attempt timeout, well over a slow answer
    probe_every: float = 5.0
    in_flight: list[float] = []  # start times of the attempts running now
    failures: int = 0  # consecutive failed attempts (no answer, or a 5xx)
    last_failure_at: float = 0.0
    last_finished_at: float = 0.0  # when an attempt there last ended, however it ended

    def admit(self, now: float) -> Admission:
        failing = self.failures > 0 and now - self.last_failure_at < self.probe_every
        if len(self.in_flight) >= self.limit:
            hanging = now - min(self.in_flight) > self.slow_after
            return Admission.SKIP if failing or hanging else Admission.PARK
        if failing and self.in_flight:
            return Admission.SKIP  # a probe is already out
        return Admission.GO

    def stuck_for(self, now: float) -> float:
        """How long every attempt in flight has been running: the youngest's age (0: none)."""
        return now - max(self.in_flight) if self.in_flight else 0.0

    def hanging_in(self, now: float) -> float:
        """How long until the oldest attempt in flight passes `slow_after` (0: past it, or none)."""
        return max(0.0, min(self.in_flight) + self.slow_after - now) if self.in_flight else 0.0

    def reason(self, now: float) -> str:
        if self.failures and now - self.last_failure_at < self.probe_every:
            return f"not attempted: the endpoint failed its last {self.failures} attempt(s)"
        return f"not attempted: the endpoint is busy with {len(self.in_flight)} slow attempt(s)"

    def started(self, now: float) -> float:
        self.in_flight.append(now)
        return now

    def finished(self, started: float, now: float, *, answered_below_500: bool) -> None:
        self.in_flight.remove(started)
        self.last_finished_at = now
        if answered_below_500:
            self.failures = 0
        else:
            self.failures += 1
            self.last_failure_at = now

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self.failures
