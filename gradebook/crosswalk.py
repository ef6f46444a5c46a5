"""The crosswalk: which of the institution's students a vendor's candidate is. Pure.

Sources, in this order (each can be turned off per subscription but the table):

1. the iTEP order's registration: an exam ordered through resultbus (`event.order`) is found by the
   `trExternal_ID` resultbus registered (iTEP's `OID`), and the student is its `trStudent_Number`;
2. the event's `candidate.external_id` (never an `OID` that is one of our order ids);
3. the crosswalk table (admin API, CSV import), keyed by vendor and `candidate_key(event)`;
4. the subscription's identifier rule (the email as the identifier, say).

The first source that answers wins, with two exceptions that keep a grade from reaching the wrong
student: a table row marked `override` wins over every source (a registrar's correction), and a table
row that disagrees with an earlier source holds the result (`Unmapped`, with both values) until
someone decides. A result nobody can map is held, never dropped: `resolve` says why.
"""

import unicodedata
from enum import StrEnum
from typing import Final

import msgspec

from gradebook.config import CrosswalkConfig, IdentifierRule
from schemas.event import ResultEvent
from schemas.vendor import Vendor

MAX_SOURCED_ID: Final = 255


class Source(StrEnum):
    ORDER_REGISTRATION = "order_registration"
    EXTERNAL_ID = "external_id"
    TABLE = "crosswalk"
    RULE = "rule"


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """A crosswalk table row, as the reader found it."""

    student: str
    override: bool = False


class Lookup(msgspec.Struct, frozen=True, kw_only=True):
    """What was looked up for one event (gradebook/crosswalk_db.py reads it)."""

    order_student_number: str | None = None  # the iTEP order's registration `trStudent_Number`
    order_product: str | None = None  # the iTEP order's product code (names its line item)
    row: Row | None = None


class Mapped(msgspec.Struct, frozen=True):
    student: str  # the student's sourcedId
    source: Source


class Unmapped(msgspec.Struct, frozen=True):
    """Held: `reason` is shown to the operator; `candidate` is the table key a mapping would use."""

    reason: str
    candidate: str | None


def candidate_key(event: ResultEvent) -> str | None:
    """The vendor's id of the candidate, the crosswalk table's key: iTEP sends no candidate id, so
    for iTEP it is the TestID (one per candidate and sitting); the others send their user's id
    (Inspera's candidate, Synap's `user.id`, Testpress's `user_id`)."""
    if event.vendor is Vendor.ITEP:
        return event.exam.test_id if event.exam is not None else None
    return event.candidate.id if event.candidate is not None else None


# Control and format characters (a right-to-left override, say) would make an identifier show as
# another one: never part of an identifier here.
_UNSHOWN: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def clean_sourced_id(value: str | None, limit: int = MAX_SOURCED_ID) -> str | None:
    """A usable identifier, or None: trimmed, not empty, nothing unshown, not too long."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > limit or any(unicodedata.category(c) in _UNSHOWN for c in text):
        return None
    return text


def apply_rule(rule: IdentifierRule, event: ResultEvent) -> str | None:
    candidate = event.candidate
    if candidate is None:
        return None
    value = {
        "email": candidate.email,
        "username": candidate.username,
        "candidate_id": candidate.id,
        "external_id": candidate.external_id,
    }[rule.field]
    if value is None:
        return None
    value = value.strip()
    if rule.field == "email":
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain:
            return None
        if rule.domain is not None and domain.lower() != rule.domain.lower().lstrip("@"):
            return None
        if rule.local_part:
            value = local
    if rule.lowercase:
        value = value.lower()
    return clean_sourced_id(rule.prefix + value) if value else None


def resolve(event: ResultEvent, config: CrosswalkConfig, found: Lookup) -> Mapped | Unmapped:
    key = candidate_key(event)
    row = found.row
    row_student = clean_sourced_id(row.student) if row is not None else None
    if row is not None and row.override and row_student is not None:
        return Mapped(row_student, Source.TABLE)

    answers: list[Mapped] = []
    tried: list[str] = []
    if config.order_registration and event.vendor is Vendor.ITEP:
        number = clean_sourced_id(found.order_student_number)
        if number is not None:
            answers.append(Mapped(number, Source.ORDER_REGISTRATION))
        else:
            tried.append(
                "its iTEP order has no trStudent_Number"
                if event.order is not None
                else "it was not ordered through resultbus"
            )
    if config.external_id:
        external = event.candidate.external_id if event.candidate is not None else None
        # iTEP returns the trExternal_ID we registered as OID: for our orders it is the order id.
        if event.order is not None and external == event.order.id:
            external = None
        cleaned = clean_sourced_id(external)
        if cleaned is not None:
            answers.append(Mapped(cleaned, Source.EXTERNAL_ID))
        else:
            tried.append("no candidate.external_id")
    if row_student is not None:
        answers.append(Mapped(row_student, Source.TABLE))
    else:
        tried.append(f"no crosswalk row for {event.vendor.value} {key!r}" if key else "no candidate id")
    if config.rule is not None:
        ruled = apply_rule(config.rule, event)
        if ruled is not None:
            answers.append(Mapped(ruled, Source.RULE))
        else:
            tried.append(f"the identifier rule found no usable {config.rule.field}")
    else:
        tried.append("no identifier rule")

    if not answers:
        return Unmapped(f"no student for {_who(event, key)}: " + "; ".join(tried), key)
    first = answers[0]
    if row_student is not None and first.source is not Source.TABLE and first.student != row_student:
        return Unmapped(
            f"sources disagree for {_who(event, key)}: {first.source.value} says {first.student!r},"
            f" the crosswalk row says {row_student!r} (mark the row override, or correct it)",
            key,
        )
    return first


def _who(event: ResultEvent, key: str | None) -> str:
    what = "TestID" if event.vendor is Vendor.ITEP else "candidate"
    return f"{event.vendor.value} {what} {key!r}" if key else f"{event.vendor.value} event {event.id}"
