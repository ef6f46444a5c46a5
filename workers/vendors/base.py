"""What every vendor module returns, and the pieces they share."""

import math
import re
import uuid

import msgspec

from schemas.envelope import RawEnvelope
from schemas.event import VENDOR_EVENT_PREFIX, ResultEvent
from workers.errors import RejectedWebhook

# Event ids are UUIDv5 of the vendor and its natural key: the same vendor event gets the same id
# wherever and whenever it is processed, which is what makes dedup and replay safe.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a4e-8b0d-5c3e-9a71-2d4b6e8f0a13")


class Normalized(msgspec.Struct, frozen=True):
    natural_key: str
    event: ResultEvent


def event_id(envelope: RawEnvelope, natural_key: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{envelope.vendor.value}:{natural_key}"))


_NON_WORD = re.compile(r"[^a-z0-9_.]+")


def vendor_event_type(name: str) -> str:
    """`event.<name>`, with the name made safe for a routing key (no spaces, no wildcards)."""
    return VENDOR_EVENT_PREFIX + (_NON_WORD.sub("_", name.strip().lower()).strip("_.") or "unnamed")


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


# What decoding a vendor's body may raise for a body that is simply bad: msgspec's own errors (invalid
# UTF-8 and numbers out of range among them), and RecursionError for nesting deeper than it follows.
DECODE_ERRORS = (msgspec.MsgspecError, RecursionError)


def decode_failure(vendor: str, error: Exception) -> RejectedWebhook:
    """msgspec's message already names the field path (`- at $.attempt.id`)."""
    if isinstance(error, RecursionError):
        return RejectedWebhook(f"{vendor}: nested too deeply to decode")
    return RejectedWebhook(f"{vendor}: {error}")


def text_or_none(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
