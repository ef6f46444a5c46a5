"""Value rules taken from the vendors' documents.

A value outside its documented domain rejects the whole webhook: it is kept as rejected, with the
vendor, the field and the rule in the reason, and can be replayed once the vendor (or the rule) is
fixed. Publishing it would hand every subscriber a result the vendor itself rules out.

Every check lets `None` through: whether a field must be present is the normalizer's decision, not
the rule's. Comparisons are written so that NaN fails them.
"""

import math
from datetime import datetime

from vendors.base import RejectedWebhook


def shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 7, not 7.0: as the vendor most likely wrote it
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"{value:.6g}"  # a whole number made from a huge float: not its 300 digits
    if isinstance(value, str):
        return repr(value[:40])
    return str(value)


def reject(vendor: str, field: str, value: object, rule: str) -> RejectedWebhook:
    return RejectedWebhook(f"{vendor}: `{field}` {shown(value)} {rule}")


def finite(vendor: str, field: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise reject(vendor, field, value, "is not a finite number")
    return value


def within(vendor: str, field: str, value: float | None, low: float, high: float) -> float | None:
    """`low <= value <= high`. The bounds are shown as given, so pass them as the vendor writes them
    (`0.0, 6.0` for an iTEP level, `0, 100` for a percent)."""
    if value is not None and not low <= value <= high:
        raise reject(vendor, field, value, f"is outside {low}\N{EN DASH}{high}")
    return value


def not_negative(vendor: str, field: str, value: float | None) -> float | None:
    if value is not None and not value >= 0:
        raise reject(vendor, field, value, "is negative")
    return value


def whole(vendor: str, field: str, value: float | None) -> int | None:
    """A number that must be an integer (a count, a day of the month) sent as a JSON number."""
    if value is None:
        return None
    if not math.isfinite(value) or not float(value).is_integer():
        raise reject(vendor, field, value, "is not a whole number")
    return int(value)


def count(vendor: str, field: str, value: float | None) -> int | None:
    """A number of things: a whole number, not negative."""
    return whole(vendor, field, not_negative(vendor, field, value))


def instant(vendor: str, field: str, value: datetime | None) -> datetime | None:
    """A timestamp names a real instant only with its offset: a naive one could be any of 26 hours."""
    if value is not None and value.utcoffset() is None:
        raise reject(vendor, field, value.isoformat(), "has no time zone offset (not an instant)")
    return value


def identity(vendor: str, field: str, value: str | int | None) -> str:
    """An id the event is keyed on: present and not blank."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise RejectedWebhook(f"{vendor}: `{field}` is missing or empty (the event is keyed on it)")
    return text
