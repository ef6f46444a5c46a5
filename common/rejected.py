"""Choosing rejected webhooks: by source, vendor, time of arrival, id, and by what their bodies say
about their exam. Shared by every list and replay of them (admin API, console, operator CLI), so
that a count, a list and a replay of "those that match" are the same rows.

A rejected webhook has no event to search, only the vendor's bytes: the SQL function of migration
011 reads from them what the normalizer would have made the exam key, test id, the candidate's
external id and email, as `kind:value` texts, and a GIN index over it (rejected rows only) serves
each look-up. A search uses KEYS exactly (the index's expression) with `@>`; each condition is added
only when its filter is given (a generic `(... IS NULL OR ...)` could not use the index)."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final, Literal

import msgspec

# The index's expression, word for word (workers/migrations/011_rejected_keys.sql).
KEYS: Final = "rejected_webhook_keys(vendor, content_type, body)"

Kind = Literal["email", "external_id", "test_id", "key"]
KINDS: Final[tuple[Kind, ...]] = ("email", "external_id", "test_id", "key")


class BodyNames(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a rejected body names, where it says so."""

    exam_key: str | None = None
    test_id: str | None = None
    external_id: str | None = None
    email: str | None = None


def search_key(kind: Kind, value: str) -> str:
    """The indexed text of one search: `test_id:3279B035APR`; an email in lower case."""
    text = value.strip()
    return f"{kind}:{text.lower() if kind == 'email' else text}"


def search_keys(given: Mapping[Kind, str | None]) -> list[str]:
    return [search_key(kind, value) for kind, value in given.items() if value is not None and value.strip()]


def body_names(keys: Iterable[str] | None) -> BodyNames:
    found: dict[str, str] = {}
    for item in keys or ():
        kind, _, value = item.partition(":")
        found.setdefault("exam_key" if kind == "key" else kind, value)
    return BodyNames(
        exam_key=found.get("exam_key"),
        test_id=found.get("test_id"),
        external_id=found.get("external_id"),
        email=found.get("email"),
    )


class RejectedFilter(msgspec.Struct, frozen=True, kw_only=True):
    source: str | None = None
    vendors: list[str] | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    ids: list[str] | None = None
    keys: list[str] = []  # search_key()s the body must all name
    # Newest first, a page at a time: rows received before this (received_at, id).
    before: tuple[datetime, str] | None = None
    replayable: bool = False  # only those with a body left (a purged one has nothing to replay)


def where(chosen: RejectedFilter, params: list[object]) -> str:
    """The WHERE clause choosing `chosen`'s rows of raw_webhooks; appends its values to `params`."""

    def value(v: object) -> str:
        params.append(v)
        return f"${len(params)}"

    conditions = ["outcome = 'rejected'"]
    if chosen.replayable:
        conditions.append("purged_at IS NULL")
    if chosen.source is not None:
        conditions.append(f"source = {value(chosen.source)}")
    if chosen.vendors is not None:
        conditions.append(f"vendor = ANY({value(chosen.vendors)}::text[])")
    if chosen.since is not None:
        conditions.append(f"received_at >= {value(chosen.since)}")
    if chosen.until is not None:
        conditions.append(f"received_at < {value(chosen.until)}")
    if chosen.ids is not None:
        conditions.append(f"id = ANY({value(chosen.ids)}::uuid[])")
    if chosen.keys:
        conditions.append(f"{KEYS} @> {value(chosen.keys)}::text[]")
    if chosen.before is not None:
        at, key = chosen.before
        conditions.append(f"(received_at, id) < ({value(at)}, {value(key)}::uuid)")
    return " AND ".join(conditions)


# Newest first by arrival, everywhere rejected webhooks are listed.
NEWEST_FIRST: Final = "ORDER BY received_at DESC, id DESC"
