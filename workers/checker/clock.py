"""The checker's notion of now, injectable so that tests can move eight hours on without waiting.

Every time the checker compares or stores (due, claimed until, failing since, checked at) comes from
this clock, never from the database's now(), so a test's clock rules the whole schedule. Only the
signature's timestamp is wall time: the receiver checks it against its own clock.
"""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
