"""Names of the exchanges, queues and routing keys that both sides of the broker agree on.

Every name hangs off one prefix so that a test (or a second deployment on one broker) can have a
world of its own.
"""

import hashlib
import re
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


# A routing key is at most 255 bytes (AMQP's short string); an event type is kept well below that.
MAX_EVENT_TYPE: Final = 128
# What a result's routing key is made of: lower-case words of letters, digits and `_`, one dot
# between words. No `*` or `#` (a binding's wildcards), no empty word, nothing a consumer's binding
# could not name.
_SAFE_TYPE: Final = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_NOT_IN_WORDS: Final = re.compile(r"[^a-z0-9_.]+")
_NOT_IN_A_WORD: Final = re.compile(r"[^a-z0-9_]+")


def routing_words(text: str, *, max_length: int = MAX_EVENT_TYPE, dotted: bool = True) -> str:
    """`text` as routing-key words: lower case, every run of other characters one `_`, no empty word,
    at most `max_length` characters (a longer text is cut and ends in a hash of the whole, so that
    two long texts stay apart). `dotted=False`: one word (a dot is just another character)."""
    lowered = text.strip().lower()
    replaced = (_NOT_IN_WORDS if dotted else _NOT_IN_A_WORD).sub("_", lowered)
    words = ".".join(w for w in (part.strip("_") for part in replaced.split(".")) if w)
    if len(words) > max_length:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        words = words[: max_length - len(digest) - 1].rstrip("_.") + "_" + digest
    return words


def result_routing_key(vendor: Vendor, event_type: str) -> str:
    """`<vendor>.<event type>`: `itep.completed`, `inspera.event.qti_export_ready`. A type outside
    the safe alphabet (an event stored before types were made safe, being replayed) is made safe
    here too: whatever the type, the key is one a binding can match and the broker accepts."""
    if len(event_type) > MAX_EVENT_TYPE or _SAFE_TYPE.fullmatch(event_type) is None:
        event_type = routing_words(event_type) or "unnamed"
    return f"{vendor.value}.{event_type}"
