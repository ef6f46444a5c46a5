"""The normalized result event: one schema for every vendor, published as JSON.

Consumers rely on this shape. Adding an optional field is a minor change; anything else bumps
SCHEMA_VERSION and the `schema` string, so that a consumer can tell which shape it holds.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Final

import msgspec

from schemas.vendor import Vendor

SCHEMA_VERSION: Final = 1
SCHEMA_ID: Final = f"resultbus.result-event/v{SCHEMA_VERSION}"


class Status(StrEnum):
    """The normalized exam status vocabulary, shared by every vendor."""

    STARTED = "started"
    FINISHED = "finished"  # submitted, awaiting grading
    IN_REVIEW = "in_review"
    TECHNICAL_DIFFICULTY = "technical_difficulty"
    COMPLETED = "completed"  # graded
    RELEASED = "released"  # results released to the candidate
    INVALIDATED = "invalidated"
    RESET = "reset"
    DISABLED = "disabled"


# Event type of a vendor event that is not a status change; the vendor's own name follows it:
# `event.qti_export_ready`.
VENDOR_EVENT_PREFIX: Final = "event."


class ExamRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Which exam (attempt, test event) an event is about; `key` is unique per vendor."""

    key: str
    test_id: str | None = None
    attempt_id: str | None = None
    title: str | None = None
    # Added within v1 (optional, so no version bump); the description travels into the JSON Schema.
    taken_on: Annotated[
        date | None,
        msgspec.Meta(
            description=(
                "The day the candidate finished the exam, where the vendor reports a day rather than"
                " an instant (iTEP `TestDate`, checked to be a real calendar date), as ISO 8601"
                " YYYY-MM-DD. Added in v1; replaces the raw `attributes.test_date` string."
            )
        ),
    ] = None
    # Added within v1 (optional, so no version bump): where the exam stands after this event.
    version: Annotated[
        Annotated[int, msgspec.Meta(ge=0)] | None,
        msgspec.Meta(
            description=(
                "The exam's position: grows by one with every event that moved the exam's state (the"
                " first that did is 1). An event that moved nothing (a late or repeated status, a"
                " vendor event) carries the version the exam already had. Keep the highest version"
                " seen per vendor and exam key and drop any event whose version is lower, or equal"
                " if you only want state changes. Added in v1."
            ),
        ),
    ] = None
    state: Annotated[
        Status | None,
        msgspec.Meta(
            description=(
                "The exam's state after this event: its status, which is this event's own status"
                " only when the event moved it (a Finished arriving after Completed carries"
                " `completed`). Absent while no event has given the exam a status. Added in v1."
            )
        ),
    ] = None


class Candidate(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str | None = None
    # The caller's own reference for the candidate (iTEP `OID`, Testpress `institute_attempt_id`).
    external_id: str | None = None
    name: str | None = None
    email: str | None = None
    username: str | None = None


class Section(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    score: float | None = None
    percent: float | None = None
    level: float | None = None
    cefr: str | None = None


class Grade(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    label: str
    passed: bool | None = None


class Result(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    score: float | None = None
    max_score: float | None = None
    percent: float | None = None
    level: float | None = None
    cefr: str | None = None
    grade: Grade | None = None
    correct: int | None = None
    incorrect: int | None = None
    unanswered: int | None = None
    duration_minutes: float | None = None
    report_url: str | None = None
    sections: list[Section] = []


class OrderRef(msgspec.Struct, frozen=True, kw_only=True):
    """The iTEP order (placed through resultbus) that this exam belongs to."""

    id: Annotated[str, msgspec.Meta(description="The order id resultbus answered when the order was placed.")]
    reference: Annotated[str, msgspec.Meta(description="The caller's own reference, as given in the order.")]


class ResultEvent(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="schema", tag=SCHEMA_ID
):
    """A normalized event. `id` is stable: the same vendor event always gets the same id.

    `schema` is the Struct's tag, not a field: `omit_defaults` drops a field equal to its default, so
    a `schema` field defaulting to SCHEMA_ID was never sent. A tag is always encoded (first), marked
    required in the JSON Schema, and a decoder refuses another version's tag instead of misreading it."""

    id: str
    type: str  # a Status value, or VENDOR_EVENT_PREFIX + the vendor's event name
    vendor: Vendor
    source: str
    webhook_id: str
    vendor_event: str  # the vendor's own name for what happened (iTEP Status, Inspera event, …)
    received_at: datetime
    occurred_at: datetime | None = None  # the vendor's timestamp, when it sends one
    status: Status | None = None
    exam: ExamRef | None = None
    candidate: Candidate | None = None
    result: Result | None = None
    # Vendor ids that do not fit the fields above (Inspera marketplace, object types, …).
    attributes: dict[str, str | int | float | bool | None] = {}
    # Added within v1 (optional, so no version bump).
    order: Annotated[
        OrderRef | None,
        msgspec.Meta(
            description=(
                "Set when the exam was ordered through resultbus (`POST /v1/itep/orders` or the"
                " `<prefix>.itep.orders` queue): iTEP's `OID` is the order id, or its `TestID` the"
                " test ID the order was given. Added in v1."
            )
        ),
    ] = None


# Map keys (`attributes`) sorted: an event re-encoded from its stored copy (PostgreSQL's jsonb keeps
# its own key order) is then byte for byte the one published, and its signature the same.
_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder(ResultEvent)


# What PostgreSQL's text takes: anything but NUL.
_Text = Annotated[str, msgspec.Meta(pattern="^[^\x00]*$")]


class ExamKey(msgspec.Struct, frozen=True):
    key: _Text


class EventHead(msgspec.Struct, frozen=True):
    """The fields of a ResultEvent that the fan-out's matching and ordering need, decoded alone and
    refused when PostgreSQL would refuse them (the fan-out stores many events in one statement)."""

    id: uuid.UUID
    vendor: _Text
    source: _Text
    type: _Text
    exam: ExamKey | None = None


_head_decoder = msgspec.json.Decoder(EventHead)


def decode_head(data: bytes) -> EventHead:
    return _head_decoder.decode(data)


def encode_event(event: ResultEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> ResultEvent:
    return _decoder.decode(data)


def event_json_schema() -> dict[str, object]:
    return msgspec.json.schema(ResultEvent)
