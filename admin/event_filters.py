"""Which `event_types` a subscription may filter on: the names `GET /v1/event-types` lists, any vendor
event (`event.<name>`: open-ended, an unknown vendor name is normal), and prefixes ending in `*`
that can match something. A typo (`complete`) would otherwise be stored and silently match nothing."""

import difflib
from typing import Final

from admin.errors import Unprocessable
from admin.event_types import event_types
from schemas.event import VENDOR_EVENT_PREFIX

_KNOWN: Final = [t.type for t in event_types() if t.kind != "pattern"]


def problem(name: str) -> str | None:
    """Why `name` is no filter, or None when it is one."""
    if name.endswith("*"):
        prefix = name[:-1]
        if "*" in prefix:
            return f"{name!r}: '*' only at the end"
        if prefix.startswith(VENDOR_EVENT_PREFIX) or any(known.startswith(prefix) for known in _KNOWN):
            return None
        return f"{name!r} matches no event type"
    if "*" in name:
        return f"{name!r}: '*' only at the end"
    if name in _KNOWN or (name.startswith(VENDOR_EVENT_PREFIX) and len(name) > len(VENDOR_EVENT_PREFIX)):
        return None
    close = difflib.get_close_matches(name, _KNOWN, n=1)
    return f"unknown event type {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def check_event_types(names: list[str] | None) -> None:
    found = [p for p in map(problem, names or []) if p is not None]
    if found:
        statuses = ", ".join(k for k in _KNOWN if not k.startswith(VENDOR_EVENT_PREFIX))
        raise Unprocessable(
            f"event_types: {'; '.join(found)}. Known (GET /v1/event-types): {statuses}; "
            f"{VENDOR_EVENT_PREFIX}<name> for a vendor event; a prefix ending in '*' ({VENDOR_EVENT_PREFIX}*)"
        )
