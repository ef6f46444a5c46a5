"""iTEP: one form field `data` (urlencoded or multipart) holding the result JSON; no timestamp, so
arrival decides the order."""

import hashlib
import re
from urllib.parse import parse_qsl

import msgspec

from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Result, ResultEvent, Section, Status
from schemas.itep import ITEP_SECTIONS, ItepResult
from workers.errors import RejectedWebhook
from workers.vendors.base import (
    Normalized,
    decode_failure,
    event_id,
    number,
    text_or_none,
    vendor_event_type,
)

_decoder = msgspec.json.Decoder(ItepResult)
_BOUNDARY = re.compile(r';\s*boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_FIELD_NAME = re.compile(rb';\s*name=(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)

# Both spellings iTEP uses in its own documents. A webhook never fires on Ready or Started, so a call
# that reports one of them is a reset.
STATUSES: dict[str, Status] = {
    "ready": Status.RESET,
    "started": Status.RESET,
    "incomplete": Status.RESET,
    "reset": Status.RESET,
    "finished": Status.FINISHED,
    "review": Status.IN_REVIEW,
    "technical difficulty": Status.TECHNICAL_DIFFICULTY,
    "problem": Status.TECHNICAL_DIFFICULTY,
    "invalidated": Status.INVALIDATED,
    "completed": Status.COMPLETED,
    "complete": Status.COMPLETED,
    "disabled": Status.DISABLED,
}


def form_data_field(content_type: str, body: bytes) -> bytes:
    """The value of the single form field `data`, from an urlencoded or a multipart body."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    values: list[bytes]
    if media_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise RejectedWebhook("itep: form body is not UTF-8") from None
        values = [v.encode("utf-8") for k, v in fields if k == "data"]
    elif media_type == "multipart/form-data":
        values = _multipart_values(content_type, body, b"data")
    else:
        raise RejectedWebhook(f"itep: content type {media_type!r} is not a form")
    if not values:
        raise RejectedWebhook("itep: form field `data` is missing")
    if len(values) > 1:
        raise RejectedWebhook("itep: form field `data` is sent more than once")
    return values[0]


def _multipart_values(content_type: str, body: bytes, name: bytes) -> list[bytes]:
    """The values of the form field `name` in a multipart/form-data body (RFC 7578).

    A small parser of our own: the standard library's `email` package is ten times slower, and a
    form field needs none of its generality."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise RejectedWebhook("itep: multipart body without a boundary parameter")
    delimiter = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3:
        raise RejectedWebhook("itep: multipart body without parts (boundary missing or wrong)")
    values = []
    for section in sections[1:-1]:  # before the first delimiter: preamble; after the last: "--"
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            head, separator, content = section.partition(b"\n\n")  # bare LF, from lax clients
        if not separator:
            raise RejectedWebhook("itep: multipart part without a header/body separator")
        for line in head.splitlines():
            if line.lower().startswith(b"content-disposition:"):
                field = _FIELD_NAME.search(line)
                if field is not None and (field.group(1) or field.group(2)) == name:
                    # The CRLF before the next delimiter belongs to the delimiter.
                    values.append(content.removesuffix(b"\n").removesuffix(b"\r"))
    return values


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    data = form_data_field(envelope.content_type, envelope.body)
    try:
        sent = _decoder.decode(data)
    except msgspec.MsgspecError as error:
        raise decode_failure("itep: field `data`", error) from None

    raw_status = sent.Status.strip()
    status = STATUSES.get(raw_status.lower())
    natural_key = f"{sent.TestID}|{raw_status}|{hashlib.sha256(data).hexdigest()}"
    event = ResultEvent(
        id=event_id(envelope, natural_key),
        type=status.value if status else vendor_event_type(raw_status),
        vendor=envelope.vendor,
        source=envelope.source,
        webhook_id=envelope.id,
        vendor_event=raw_status,
        received_at=envelope.received_at,
        status=status,
        exam=ExamRef(key=sent.TestID, test_id=sent.TestID),
        candidate=Candidate(external_id=text_or_none(sent.OID)),
        result=_result(sent),
        attributes={"test_date": sent.TestDate} if sent.TestDate else {},
    )
    return [Normalized(natural_key, event)]


def _result(sent: ItepResult) -> Result | None:
    sections = []
    for name in ITEP_SECTIONS:
        level = number(getattr(sent, f"{name}_Level"), f"{name}_Level")
        score = number(getattr(sent, f"{name}_Score"), f"{name}_Score")
        percent = number(getattr(sent, f"{name}_Percent"), f"{name}_Percent")
        cefr = text_or_none(getattr(sent, f"{name}_cefr"))
        if level is None and score is None and percent is None and cefr is None:
            continue  # the exam has no such section
        sections.append(Section(name=name.lower(), score=score, percent=percent, level=level, cefr=cefr))
    result = Result(
        level=number(sent.Overall_Level, "Overall_Level"),
        cefr=text_or_none(sent.Overall_cefr),
        duration_minutes=number(sent.Duration, "Duration"),
        report_url=text_or_none(sent.score_report_url),
        sections=sections,
    )
    # A Finished call, before grading, may carry no scores at all.
    return None if result == Result() else result
