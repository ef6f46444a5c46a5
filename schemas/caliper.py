"""Wire types of Caliper Analytics 1.2 (1EdTech) as resultbus sends them: the envelope a sensor POSTs
(`sensor`, `sendTime`, `dataVersion`, `data[]`) and the two events of a result, `GradeEvent`
(`Graded`, Grading profile) and `AssessmentEvent` (`Submitted`, Assessment profile), with the entities
they describe. JSON-LD keys (`@context`) are renamed fields; `type` is each Struct's tag.
"""

from datetime import datetime
from typing import Final

import msgspec

CONTEXT: Final = "http://purl.imsglobal.org/ctx/caliper/v1p2"
# Caliper names the data version by its context IRI.
DATA_VERSION: Final = CONTEXT


class Person(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag="Person"):
    id: str


class SoftwareApplication(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag="SoftwareApplication"
):
    id: str
    name: str | None = None
    version: str | None = None


class Assessment(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag="Assessment"
):
    id: str
    name: str | None = None
    maxScore: float | None = None


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag="Attempt"):
    id: str
    assignee: Person
    assignable: Assessment
    count: int
    dateCreated: datetime | None = None
    endedAtTime: datetime | None = None
    duration: str | None = None  # ISO 8601 duration, `PT67M30S`


class Score(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", tag="Score"):
    id: str
    attempt: str  # the Attempt's IRI
    scoreGiven: float | None = None
    maxScore: float | None = None
    scoredBy: str | None = None
    comment: str | None = None
    dateCreated: datetime | None = None
    # A label scale (CEFR, a grade label) has no number: the label travels here.
    extensions: dict[str, str] | None = None


class GradeEvent(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag_field="type",
    tag="GradeEvent",
    rename={"context": "@context"},
):
    context: str  # CONTEXT (omit_defaults would drop a field equal to its default: none here)
    id: str  # urn:uuid:…
    profile: str  # "GradingProfile"
    actor: SoftwareApplication
    action: str  # "Graded"
    object: Attempt
    generated: Score
    eventTime: datetime
    edApp: SoftwareApplication


class AssessmentEvent(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag_field="type",
    tag="AssessmentEvent",
    rename={"context": "@context"},
):
    context: str
    id: str
    profile: str  # "AssessmentProfile"
    actor: Person
    action: str  # "Submitted"
    object: Assessment
    generated: Attempt
    eventTime: datetime
    edApp: SoftwareApplication


CaliperEvent = GradeEvent | AssessmentEvent


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    sensor: str
    sendTime: datetime
    dataVersion: str = DATA_VERSION
    data: list[CaliperEvent]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    return _decoder.decode(data)
