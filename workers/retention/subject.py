"""Who an erasure is about, and whether a stored thing concerns them. Pure logic, no I/O.

Normalized events and exams are matched on their candidate fields (in SQL). Raw bodies are vendor
bytes (JSON, or iTEP's form field holding JSON), so they are found in two steps: a cheap filter in
SQL (the body contains one of the forms the identifier takes once JSON-escaped or form-encoded,
compared lower-cased), then a confirmation here. A body that the vendor's normalizer reads concerns
the candidate if one of its events names them; an email also counts wherever it appears in the body
(a custom attribute, a nested object). A body that cannot be read (a rejected webhook) concerns them
if one of its values, or else a whole token of its text, is the identifier.
"""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus

import msgspec

from schemas.envelope import RawEnvelope
from schemas.event import Candidate
from schemas.vendor import Vendor
from vendors.base import RejectedWebhook
from vendors.itep import form_data_field
from workers.router.normalize import normalize

Kind = Literal["email", "candidate_id", "external_id"]


class Subject(msgspec.Struct, frozen=True):
    kind: Kind
    value: str
    vendor: str | None = None

    def same(self, value: object) -> bool:
        if value is None or isinstance(value, bool | dict | list):
            return False
        text = str(value).strip()
        if self.kind == "email":
            return text.casefold() == self.value.strip().casefold()
        return text == self.value.strip()

    def names(self, candidate: Candidate | None) -> bool:
        if candidate is None:
            return False
        field = {"email": candidate.email, "candidate_id": candidate.id, "external_id": candidate.external_id}
        return self.same(field[self.kind])


def pg_escape(data: bytes) -> str:
    """`encode(data, 'escape')` of PostgreSQL: zero and high bytes as octal, backslashes doubled."""
    out = []
    for b in data:
        if b == 0 or b >= 128:
            out.append(f"\\{b:03o}")
        elif b == 92:
            out.append("\\\\")
        else:
            out.append(chr(b))
    return "".join(out)


def needles(value: str) -> list[str]:
    """The forms `value` may take inside a raw body, as `lower(encode(body, 'escape'))` shows them."""
    value = value.strip()
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote_plus(form, safe=""), quote(form)})
    return sorted({pg_escape(form.encode()).lower() for form in forms if form})


def _leaves(tree: Any) -> list[object]:
    found: list[object] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            found.append(node)
    return found


def _parse(content_type: str, body: bytes) -> Any:
    """The body as a JSON tree: JSON itself, or the JSON in iTEP's form field; None if neither."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return msgspec.json.decode(form_data_field(content_type, body))
        return msgspec.json.decode(body)
    except (RejectedWebhook, msgspec.DecodeError, UnicodeDecodeError):
        return None


def body_concerns(subject: Subject, vendor: str, content_type: str, body: bytes, event: str | None) -> bool:
    read = False
    try:
        envelope = RawEnvelope(
            id=str(uuid.uuid4()),
            source="",
            vendor=Vendor(vendor),
            received_at=datetime.now(UTC),
            content_type=content_type,
            body=body,
            event=event,
        )
        normalized = normalize(envelope)
        read = True
        if any(subject.names(n.event.candidate) for n in normalized):
            return True
    except (RejectedWebhook, ValueError):  # ValueError: not a vendor we know
        pass
    if read and subject.kind != "email":
        return False  # a vendor id is only this candidate's where the vendor says it names one
    tree = _parse(content_type, body)
    if tree is not None:
        return any(subject.same(leaf) for leaf in _leaves(tree))
    text = body.decode("utf-8", "replace")
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        text = " ".join(v for _, v in parse_qsl(text, keep_blank_values=True)) or unquote_plus(text)
    token = re.escape(subject.value.strip())
    flags = re.IGNORECASE if subject.kind == "email" else 0
    return re.search(rf"(?<![\w.@+-]){token}(?![\w.@+-])", text, flags) is not None
