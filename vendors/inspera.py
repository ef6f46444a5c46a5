"""Inspera Assessment: thin JSON events named by `event`; unknown event names are normal and kept."""

import msgspec

from common.decoding import DECODE_ERRORS
from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Status
from schemas.inspera import InsperaEvent
from schemas.vendor import Vendor
from vendors import rules
from vendors.base import (
    Normalized,
    RejectedWebhook,
    VendorSpec,
    decode_failure,
    result_event,
)

_decoder = msgspec.json.Decoder(InsperaEvent)

# Inspera events that are an exam status change; every other event is kept as a vendor event.
STATUSES: dict[str, Status] = {
    "confirm_final_grades": Status.COMPLETED,
}

_EXAM_CONTEXT = "ASSESSMENT_RUN"
_CANDIDATE_TYPES = {"CANDIDATE", "USER_ASSESSMENT"}


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    try:
        sent = _decoder.decode(envelope.body)
    except DECODE_ERRORS as error:
        raise decode_failure("inspera", error) from None
    if not sent.event.strip():
        raise RejectedWebhook("inspera: `event` is empty (it names what happened)")
    rules.identity("inspera", "contextObjectType", sent.contextObjectType)
    # The event's order and its id rest on the timestamp; Inspera documents UTC (`…'Z'`).
    rules.instant("inspera", "timestamp", sent.timestamp)

    context = f"{sent.contextObjectType}:{sent.contextObjectId}"
    associated = (
        f"{sent.associatedObjectType}:{sent.associatedObjectId}"
        if sent.associatedObjectId is not None
        else ""
    )
    natural_key = f"{sent.event}|{context}|{associated}|{sent.timestamp.isoformat()}"
    status = STATUSES.get(sent.event)

    exam = None
    candidate = None
    if sent.contextObjectType == _EXAM_CONTEXT:
        # For an assessment run the context object is the test; a candidate makes it one attempt.
        on_candidate = sent.associatedObjectType in _CANDIDATE_TYPES and associated
        exam = ExamRef(
            key=f"{context}/{associated}" if on_candidate else context,
            test_id=str(sent.contextObjectId),
        )
        if on_candidate:
            candidate = Candidate(id=str(sent.associatedObjectId))

    attributes: dict[str, str | int | float | bool | None] = {
        "context_object_type": sent.contextObjectType,
        "context_object_id": sent.contextObjectId,
    }
    if sent.marketplaceId is not None:
        attributes["marketplace_id"] = sent.marketplaceId
    if sent.associatedObjectId is not None:
        attributes["associated_object_type"] = sent.associatedObjectType
        attributes["associated_object_id"] = sent.associatedObjectId
    if sent.triggeringUserId is not None:
        attributes["triggering_user_id"] = sent.triggeringUserId
    if (extra := sent.extraInfo) is not None:
        if extra.type is not None:
            attributes["extra_info_type"] = extra.type
        if isinstance(extra.value, str | int | float | bool):
            attributes["extra_info_value"] = extra.value

    event = result_event(
        envelope,
        natural_key,
        sent.event,
        status,
        occurred_at=sent.timestamp,
        exam=exam,
        candidate=candidate,
        attributes=attributes,
    )
    return [Normalized(natural_key, event)]


SPEC = VendorSpec(
    vendor=Vendor.INSPERA,
    # The verification ping is a Java map string, not JSON.
    media_types=frozenset({"application/json", "text/plain"}),
    auth_kinds=frozenset({"inspera_signature"}),
    documented_events=("revision_status_updated", "qti_export_ready"),
    normalize=normalize,
)
