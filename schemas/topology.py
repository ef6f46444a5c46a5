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


def raw_routing_key(vendor: Vendor, source: str) -> str:
    return f"{vendor.value}.{source}"


def result_routing_key(vendor: Vendor, event_type: str) -> str:
    """`<vendor>.<event type>`: `itep.completed`, `inspera.event.qti_export_ready`."""
    return f"{vendor.value}.{event_type}"
