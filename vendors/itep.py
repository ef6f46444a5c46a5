"""iTEP: one form field `data` (urlencoded or multipart) holding the result JSON; no timestamp, so
arrival decides the order."""

import hashlib
import re
from datetime import date
from urllib.parse import parse_qsl

import msgspec

from common.decoding import DECODE_ERRORS
from common.itep.tie import ORDER_TIE
from schemas.envelope import RawEnvelope
from schemas.event import Candidate, ExamRef, Result, Section, Status
from schemas.itep import ITEP_SECTIONS, ItepResult
from schemas.vendor import Vendor
from vendors import rules
from vendors.base import (
    Normalized,
    RejectedWebhook,
    VendorSpec,
    decode_failure,
    number,
    result_event,
    text_or_none,
)

_VENDOR = "itep"
# The documented form is M/D/YYYY; iTEP's own sample writes it with backslashes ("6\10\2024"), so
# either separator is accepted. ASCII digits only: `\d` would also take other scripts' digits.
_TEST_DATE = re.compile(r"([0-9]{1,2})[/\\]([0-9]{1,2})[/\\]([0-9]{4})")

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
    """The values of the form field `name` in a multipart/form-data body (RFC 7578)."""
    return [value for field, value in multipart_fields(content_type, body) if field == name]


def multipart_fields(content_type: str, body: bytes) -> list[tuple[bytes, bytes]]:
    """Every named field of a multipart/form-data body (RFC 7578), as (name, value), in order; raises
    RejectedWebhook when the body is not one. (The console shows stored bodies with it too.)

    A small parser of our own: the standard library's `email` package is ten times slower, and a
    form field needs none of its generality."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise RejectedWebhook("itep: multipart body without a boundary parameter")
    delimiter = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3:
        raise RejectedWebhook("itep: multipart body without parts (boundary missing or wrong)")
    fields = []
    for section in sections[1:-1]:  # before the first delimiter: preamble; after the last: "--"
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            head, separator, content = section.partition(b"\n\n")  # bare LF, from lax clients
        if not separator:
            raise RejectedWebhook("itep: multipart part without a header/body separator")
        for line in head.splitlines():
            if line.lower().startswith(b"content-disposition:"):
                field = _FIELD_NAME.search(line)
                if field is not None:
                    # The CRLF before the next delimiter belongs to the delimiter.
                    fields.append(
                        (field.group(1) or field.group(2), content.removesuffix(b"\n").removesuffix(b"\r"))
                    )
    return fields


def normalize(envelope: RawEnvelope) -> list[Normalized]:
    data = form_data_field(envelope.content_type, envelope.body)
    try:
        sent = _decoder.decode(data)
    except DECODE_ERRORS as error:
        raise decode_failure("itep: field `data`", error) from None

    rules.identity(_VENDOR, "TestID", sent.TestID)
    raw_status = sent.Status.strip()
    if not raw_status:
        raise RejectedWebhook("itep: `Status` is empty (every iTEP call reports a status)")
    # An unknown status is kept as a vendor event: iTEP's two pages already name them differently.
    status = STATUSES.get(raw_status.lower())
    natural_key = f"{sent.TestID}|{raw_status}|{hashlib.sha256(data).hexdigest()}"
    event = result_event(
        envelope,
        natural_key,
        raw_status,
        status,
        exam=ExamRef(key=sent.TestID, test_id=sent.TestID, taken_on=day_taken(sent)),
        candidate=Candidate(external_id=text_or_none(sent.OID)),
        result=_result(sent),
        # A Status iTEP does not document becomes `event.<status>`, one routing-key word.
        one_word=True,
    )
    return [Normalized(natural_key, event)]


def _level(value: float | str | None, field: str) -> float | None:
    return rules.within(_VENDOR, field, number(value, field), 0.0, 6.0)


def _percent(value: float | str | None, field: str) -> float | None:
    return rules.within(_VENDOR, field, number(value, field), 0, 100)


def _result(sent: ItepResult) -> Result | None:
    sections = []
    for name in ITEP_SECTIONS:
        level = _level(getattr(sent, f"{name}_Level"), f"{name}_Level")
        # `_Score` is documented only as "the iTEP Test ID" (a copy slip): no domain to check.
        score = number(getattr(sent, f"{name}_Score"), f"{name}_Score")
        percent = _percent(getattr(sent, f"{name}_Percent"), f"{name}_Percent")
        cefr = text_or_none(getattr(sent, f"{name}_cefr"))
        if level is None and score is None and percent is None and cefr is None:
            continue  # the exam has no such section
        sections.append(Section(name=name.lower(), score=score, percent=percent, level=level, cefr=cefr))
    result = Result(
        level=_level(sent.Overall_Level, "Overall_Level"),
        cefr=text_or_none(sent.Overall_cefr),
        # "Number of minutes candidate spent taking the exam".
        duration_minutes=rules.not_negative(_VENDOR, "Duration", number(sent.Duration, "Duration")),
        report_url=text_or_none(sent.score_report_url),
        sections=sections,
    )
    # A Finished call, before grading, may carry no scores at all.
    return None if result == Result() else result


def _date_part(value: float | str | None, field: str, low: int, high: int) -> int | None:
    part = rules.whole(_VENDOR, field, number(value, field))
    rules.within(_VENDOR, field, part, low, high)
    return part


def _year(value: float | str | None, field: str) -> int | None:
    year = rules.whole(_VENDOR, field, number(value, field))
    if year is not None and not year > 1900:
        raise rules.reject(_VENDOR, field, year, "is not greater than 1900")
    return year


def day_taken(sent: ItepResult) -> date | None:
    """The day the test was finished, from `TestDate` (M/D/YYYY) or, when only they are sent, from
    `TestMonth`/`TestDay`/`TestYear`; whatever is sent must agree and be a real calendar date."""
    sent_parts = (
        ("TestMonth", _date_part(sent.TestMonth, "TestMonth", 1, 12)),
        ("TestDay", _date_part(sent.TestDay, "TestDay", 1, 31)),
        ("TestYear", _year(sent.TestYear, "TestYear")),
    )
    text = (sent.TestDate or "").strip()
    if not text:
        month, day, year = (value for _, value in sent_parts)
        if month is None or day is None or year is None:
            return None  # nothing (or not enough) to tell the day by
        try:
            return date(year, month, day)
        except (ValueError, OverflowError):  # OverflowError: a year beyond C's long
            raise RejectedWebhook(
                f"itep: `TestMonth`/`TestDay`/`TestYear` {month}/{day}/{rules.shown(year)}"
                " is not a real calendar date"
            ) from None

    found = _TEST_DATE.fullmatch(text)
    if found is None:
        raise rules.reject(_VENDOR, "TestDate", text, "is not in the documented M/D/YYYY form")
    month, day, year = int(found[1]), int(found[2]), int(found[3])
    for part, value, ok, rule in (
        ("month", month, 1 <= month <= 12, "is outside 1\N{EN DASH}12"),
        ("day", day, 1 <= day <= 31, "is outside 1\N{EN DASH}31"),
        ("year", year, year > 1900, "is not greater than 1900"),
    ):
        if not ok:
            raise RejectedWebhook(f"itep: `TestDate` {text!r}: {part} {value} {rule}")
    try:
        taken_on = date(year, month, day)
    except ValueError:
        raise rules.reject(_VENDOR, "TestDate", text, "is not a real calendar date") from None
    for (field, sent_part), part_value in zip(sent_parts, (month, day, year), strict=True):
        if sent_part is not None and sent_part != part_value:
            raise rules.reject(_VENDOR, field, sent_part, f"does not match `TestDate` {text!r}")
    return taken_on


SPEC = VendorSpec(
    vendor=Vendor.ITEP,
    # iTEP's text says "form encoded", its captured headers show multipart: both.
    media_types=frozenset({"application/x-www-form-urlencoded", "multipart/form-data"}),
    # Set per tracking code by iTEP staff; no signature is documented.
    auth_kinds=frozenset({"basic", "header_token"}),
    normalize=normalize,
    # Its results of orders placed through resultbus carry the order, and the orders follow them.
    orders=ORDER_TIE,
)
