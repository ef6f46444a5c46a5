"""Names of the exchanges, queues and routing keys that both sides of the broker agree on.

Every name hangs off one prefix so that a test (or a second deployment on one broker) can have a
world of its own. The queues workers consume are `WorkQueue`s: each knows its dead-letter queue and
its delay tiers, and common/broker.py `declare_work_queue` declares any of them the one way.
"""

import hashlib
import re
from collections.abc import Iterable
from typing import Final

import msgspec

from schemas.vendor import Vendor

DEFAULT_PREFIX: Final = "resultbus"


def delay_ms(seconds: float) -> int:
    """A delay as a tier's TTL: whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))


def tiers_ms(delays: Iterable[float]) -> list[int]:
    """The delay tiers that `delays` need: one per distinct delay, shortest first."""
    return sorted({delay_ms(d) for d in delays})


class Tiers(msgspec.Struct, frozen=True, kw_only=True):
    """A work queue's delay tiers: a queue per delay that nothing consumes; a message waits out the
    queue's TTL there, then is dead-lettered back to work. Queue TTLs rather than per-message TTLs,
    because a message only expires at the head of its queue: one tier per delay keeps each in order."""

    stem: str
    # The router's tiers are named by seconds (`resultbus.retry.5s`), the others by milliseconds: the
    # names are what a running broker holds, so each keeps its own.
    in_seconds: bool = False
    # Where an expired message goes: through `exchange` ("": the default exchange) with `routing_key`.
    exchange: str = ""
    routing_key: str
    # Quorum queues that dead-letter at least once (the router's), or classic ones (the others').
    quorum: bool = False

    def name(self, delay_ms: int) -> str:
        return f"{self.stem}.{delay_ms / 1000:g}s" if self.in_seconds else f"{self.stem}.{delay_ms}ms"


class WorkQueue(msgspec.Struct, frozen=True, kw_only=True):
    """A queue that workers consume, the dead-letter queue that takes what was redelivered too often
    (or rejected), and its delay tiers, if it has any."""

    name: str
    dead: str
    tiers: Tiers | None = None

    def tier(self, delay_ms: int) -> str:
        """The tier a message waits `delay_ms` in before it comes back."""
        if self.tiers is None:
            raise ValueError(f"{self.name} has no delay tiers")
        return self.tiers.name(delay_ms)

    def names(self, tiers_ms: Iterable[int] = ()) -> list[str]:
        """The queue, its dead-letter queue and the tiers of `tiers_ms`."""
        return [self.name, self.dead, *(self.tier(ms) for ms in tiers_ms)]


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

    @property
    def raw(self) -> WorkQueue:
        """The routers' work (bound with `#` on the raw exchange); its tiers hand a message back
        through the raw exchange."""
        return WorkQueue(
            name=self.raw_queue,
            dead=self.dead_queue,
            tiers=Tiers(
                stem=f"{self.prefix}.retry",
                in_seconds=True,
                exchange=self.raw_exchange,
                routing_key="retry",
                quorum=True,
            ),
        )

    @property
    def deliveries(self) -> WorkQueue:
        return WorkQueue(name=self.deliveries_queue, dead=self.delivery_dead_queue)

    @property
    def delivery_attempts(self) -> WorkQueue:
        return WorkQueue(
            name=self.delivery_attempts_queue,
            dead=self.delivery_dead_queue,
            tiers=Tiers(stem=f"{self.prefix}.delivery.retry", routing_key=self.delivery_attempts_queue),
        )

    @property
    def itep_orders(self) -> WorkQueue:
        """Where downstream systems put iTEP orders (JSON `OrderRequest`)."""
        return WorkQueue(name=f"{self.prefix}.itep.orders", dead=self._itep_dead)

    @property
    def itep_fulfillment(self) -> WorkQueue:
        """The fulfillment workers' work: `resultbus.itep.order.ordered` events, bound from the results
        exchange."""
        work = f"{self.prefix}.itep.fulfillment"
        return WorkQueue(name=work, dead=self._itep_dead, tiers=Tiers(stem=f"{work}.retry", routing_key=work))

    @property
    def _itep_dead(self) -> str:
        return f"{self.prefix}.itep.dead"


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
