"""What every vendor module declares and returns, and the pieces they share."""

import math
import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec

from common import decoding
from common.errors import Reject
from common.itep.tie import OrderTie
from schemas.envelope import RawEnvelope
from schemas.event import VENDOR_EVENT_PREFIX, Candidate, ExamRef, Result, ResultEvent, Status
from schemas.topology import MAX_EVENT_TYPE, routing_words
from schemas.vendor import Vendor

# Event ids are UUIDv5 of the vendor and its natural key: the same vendor event gets the same id
# wherever and whenever it is processed, which is what makes dedup and replay safe.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a4e-8b0d-5c3e-9a71-2d4b6e8f0a13")


class RejectedWebhook(Reject):
    """The webhook can never be processed as sent: stored as rejected with this reason and acked
    (replayable after a fix)."""


class VendorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ingress, the router and the admin API need to know of one vendor, declared once
    in its module (`vendors/<vendor>.py`) and looked up in `vendors.SPECS` everywhere else."""

    vendor: Vendor
    # What the vendor sends, without parameters (charset, boundary): anything else is a 415.
    media_types: frozenset[str]
    # The `auth.kind`s a source of this vendor may use (see ingress/sources.py for each kind).
    auth_kinds: frozenset[str]
    # True: the vendor sends one event per URL, so the source names it (`event = "..."`, required);
    # False: the body names its event, and a source may not.
    event_per_url: bool = False
    # Vendor events the vendor documents that are not a status change (`event.<name>`), for the admin
    # API's list of event types; unknown ones are kept all the same.
    documented_events: tuple[str, ...] = ()
    normalize: Callable[[RawEnvelope], list["Normalized"]]
    # A vendor whose results may answer orders placed through resultbus (iTEP): the pure tie of its
    # events to those orders, which the router calls with the orders it has locked. None: never.
    orders: OrderTie | None = None


class Normalized(msgspec.Struct, frozen=True):
    natural_key: str
    event: ResultEvent


def event_id(envelope: RawEnvelope, natural_key: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{envelope.vendor.value}:{natural_key}"))


def result_event(
    envelope: RawEnvelope,
    natural_key: str,
    vendor_event: str,
    status: Status | None,
    *,
    exam: ExamRef | None,
    occurred_at: datetime | None = None,
    candidate: Candidate | None = None,
    result: Result | None = None,
    attributes: dict[str, str | int | float | bool | None] | None = None,
    one_word: bool = False,
) -> ResultEvent:
    """The event of one webhook: its id, type and provenance derived the same way for every vendor
    (a status it maps to, else the vendor's own event name); the rest is the vendor's. `one_word`:
    the vendor's name is one name even with dots in it (an iTEP Status), not dotted words (Synap's
    `user.registered`)."""
    return ResultEvent(
        id=event_id(envelope, natural_key),
        type=status.value if status else vendor_event_type(vendor_event, dotted=not one_word),
        vendor=envelope.vendor,
        source=envelope.source,
        webhook_id=envelope.id,
        vendor_event=vendor_event,
        received_at=envelope.received_at,
        occurred_at=occurred_at,
        status=status,
        exam=exam,
        candidate=candidate,
        result=result,
        attributes=attributes or {},
    )


def vendor_event_type(name: str, *, dotted: bool = True) -> str:
    """`event.<name>`, the name made safe for a routing key (schemas.topology.routing_words: lower
    case, `_` for anything but letters and digits, no empty word, at most 128 characters in all).
    The vendor's own text is kept as sent in the event's `vendor_event`."""
    words = routing_words(name, max_length=MAX_EVENT_TYPE - len(VENDOR_EVENT_PREFIX), dotted=dotted)
    return VENDOR_EVENT_PREFIX + (words or "unnamed")


def number(value: float | str | None, field: str) -> float | None:
    """A number sent as a number or as its string form; "" means not given."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise RejectedWebhook(f"`{field}`: expected a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise RejectedWebhook(f"`{field}`: expected a finite number")
    return value


def decode_failure(vendor: str, error: Exception) -> RejectedWebhook:
    """For what decoding a vendor's body raised (DECODE_ERRORS); msgspec's message already names the
    field path (`- at $.attempt.id`)."""
    return RejectedWebhook(f"{vendor}: {decoding.reason(error)}")


def text_or_none(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
