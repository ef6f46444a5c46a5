"""Names of the exchanges, queues and routing keys that both sides of the broker agree on.

Every name hangs off one prefix so that a test (or a second deployment on one broker) can have a
world of its own.
"""

from typing import Final

import msgspec

from schemas.vendor import Vendor

DEFAULT_PREFIX: Final = "resultbus"


class Topology(msgspec.Struct, frozen=True):
    prefix: str = DEFAULT_PREFIX

    @property
    def raw_exchange(self) -> str:
        return f"{self.prefix}.raw"

    @property
    def raw_queue(self) -> str:
        return f"{self.prefix}.raw"

    @property
    def results_exchange(self) -> str:
        """Topic exchange of normalized events; downstream services bind their own queues here."""
        return f"{self.prefix}.results"

    @property
    def dead_queue(self) -> str:
        """Raw webhooks that failed every retry, or were redelivered too often: inspect, then replay."""
        return f"{self.prefix}.dead"

    def retry_queue(self, delay_seconds: float) -> str:
        """A delay tier: messages wait out the queue's TTL, then dead-letter back to the raw queue.
        Named by its delay, so a changed schedule declares new queues rather than clashing."""
        return f"{self.prefix}.retry.{delay_seconds:g}s"

    @property
    def deliveries_queue(self) -> str:
        """The delivery workers' own queue on the results exchange (bound with `#`)."""
        return f"{self.prefix}.deliveries"

    @property
    def delivery_dead_queue(self) -> str:
        """Delivery work that was redelivered too often (a long database outage, a bug)."""
        return f"{self.prefix}.delivery.dead"

    @property
    def delivery_attempts_queue(self) -> str:
        """One message per (delivery, attempt) to make now; the retry tiers dead-letter back here."""
        return f"{self.prefix}.delivery.attempts"

    def delivery_retry_queue(self, delay_ms: int) -> str:
        """A delay tier: messages wait here `delay_ms` (queue TTL), then go back to the attempts queue."""
        return f"{self.prefix}.delivery.retry.{delay_ms}ms"


def raw_routing_key(vendor: Vendor, source: str) -> str:
    return f"{vendor.value}.{source}"


def result_routing_key(vendor: Vendor, event_type: str) -> str:
    """`<vendor>.<event type>`: `itep.completed`, `inspera.event.qti_export_ready`."""
    return f"{vendor.value}.{event_type}"
