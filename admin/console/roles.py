"""Whether each worker role is running, as the overview can tell it from here: by the consumers on
the queues the role consumes (router, delivery, fulfillment) and, for the endpoint checker, which
keeps no queue, by whether endpoint checks fall overdue. Pure: the overview passes what it read."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from admin.console.display import ago, when
from admin.console.queues import Depth

# The checker looks for due endpoints every minute by default (RESULTBUS_CHECK_POLL); checks due for
# longer than this say it is not running, or far behind.
CHECKER_GRACE: Final = timedelta(minutes=10)
_CONSUMING_ROLES: Final = ("router", "delivery", "fulfillment")

State = Literal["running", "not running", "unknown"]


class RoleState(msgspec.Struct, frozen=True):
    role: str
    state: State
    says: str  # one plain sentence


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def consuming_role(role: str, depths: Sequence[Depth]) -> RoleState:
    mine = [d for d in depths if d.consumed_by == role]
    if not mine:
        return RoleState(role, "unknown", "no queue depths from the broker")
    declared = [d for d in mine if d.messages is not None]
    if not declared or len(declared) < len(mine):
        missing = ", ".join(d.queue for d in mine if d.messages is None)
        return RoleState(
            role,
            "not running",
            f"not running: {missing} {'is' if len(mine) - len(declared) == 1 else 'are'} not declared,"
            " so it never started under this prefix",
        )
    consumers = sum(d.consumers or 0 for d in declared)
    waiting = sum(d.messages or 0 for d in declared)
    if consumers == 0:
        names = ", ".join(d.queue for d in declared)
        backlog = f": {_plural(waiting, 'message')} waiting" if waiting else ""
        return RoleState(role, "not running", f"not running: nothing consumes {names}{backlog}")
    return RoleState(
        role, "running", f"running: {_plural(consumers, 'consumer')}, {_plural(waiting, 'message')} waiting"
    )


def checker_role(checker: Mapping[str, Any], now: datetime) -> RoleState:
    endpoints = int(checker["endpoints"] or 0)
    if endpoints == 0:
        return RoleState("checker", "unknown", "nothing to check yet: no active subscription")
    last: datetime | None = checker["last_checked_at"]
    due: datetime | None = checker["next_check_at"]
    if due is not None and now - due > CHECKER_GRACE:
        return RoleState(
            "checker",
            "not running",
            f"not running (or far behind): checks were due {ago(due, now)} ({when(due)}),"
            f" and the last check was {ago(last, now)}",
        )
    return RoleState(
        "checker",
        "running",
        f"running: last check {ago(last, now)}, next due {ago(due, now) if due else 'not set'}",
    )


def role_states(depths: Sequence[Depth], checker: Mapping[str, Any], now: datetime) -> list[RoleState]:
    return [
        *(consuming_role(role, depths) for role in _CONSUMING_ROLES),
        checker_role(checker, now),
        RoleState(
            "retention", "unknown", "not visible from here: it keeps no queue (its /healthz and logs say)"
        ),
    ]
