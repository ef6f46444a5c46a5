"""The one way an operator's time is read, wherever it is typed: the admin API's query strings and
bodies (`since`, `until`), the console's forms, the operator CLI's `--since`."""

from datetime import UTC, datetime
from typing import Final

EXPECTED: Final = "a date (2026-11-22: its midnight, UTC) or a date and time (2026-11-22T08:00:00+01:00)"


def parse_time(text: str) -> datetime:
    """An ISO 8601 date and time (no zone: UTC), or a date alone (its midnight, UTC). Raises
    ValueError naming what was expected."""
    value = text.strip()
    try:
        # Python 3.11's fromisoformat reads a date alone as its midnight, and `Z` as UTC.
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected {EXPECTED}, got {text[:60]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
