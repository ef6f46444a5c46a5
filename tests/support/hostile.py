"""Hypothesis strategies for hostile webhook bodies: each vendor's sample, mutated the ways a broken or
malicious sender would (invalid UTF-8 inside strings and keys, truncation, huge numbers, NaN and
Infinity literals, deep nesting, wrong types anywhere, empty objects, duplicated keys, a BOM, NUL
bytes), and valid webhooks with ids of their own to interleave with them."""

import json
import uuid
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

from devkit import samples
from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor

SYNAP_EVENT = "exam.resultsReleased"


def valid_body(vendor: Vendor, unique: uuid.UUID | None = None) -> dict[str, Any]:
    """The vendor's sample with ids no other webhook has: one new event each."""
    unique = unique or uuid.uuid4()
    if vendor is Vendor.ITEP:
        return samples.itep(test_id=f"HYP{unique.hex[:10].upper()}")
    if vendor is Vendor.INSPERA:
        return samples.inspera(context_id=unique.int % 10**12)
    if vendor is Vendor.SYNAP:
        return samples.synap_released(attempt_id=f"hyp-{unique.hex}")
    return samples.testpress(attempt_id=unique.int % 10**12)


def to_envelope(vendor: Vendor, payload: bytes) -> RawEnvelope:
    """`payload` is the JSON document (for iTEP: the value of its `data` form field)."""
    if vendor is Vendor.ITEP:
        return samples.envelope(
            vendor,
            b"data=" + quote_from_bytes(payload).encode(),
            content_type="application/x-www-form-urlencoded",
        )
    return samples.envelope(vendor, payload, event=SYNAP_EVENT if vendor is Vendor.SYNAP else None)


def valid_envelope(vendor: Vendor) -> RawEnvelope:
    return to_envelope(vendor, json.dumps(valid_body(vendor)).encode())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_paths(item, (*prefix, index)))
    return out


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


# Stand-ins replaced in the encoded text: JSON has no way of writing these, which is the point.
_LITERALS = {
    '"__NAN__"': b"NaN",
    '"__INF__"': b"Infinity",
    '"__NINF__"': b"-Infinity",
    '"__HUGE__"': b"9" * 5000,
    '"__HUGE_NEG__"': b"-" + b"9" * 400 + b"e999999",
    '"__DEEP__"': b"[" * 20000 + b"]" * 20000,
    '"__DEEP_OBJ__"': b'{"a":' * 5000 + b"1" + b"}" * 5000,
}

_wrong_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=3),
    st.sampled_from(sorted(_LITERALS)).map(lambda s: s.strip('"')),
)

_BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]


@st.composite
def hostile_payload(draw: st.DrawFn, vendor: Vendor) -> bytes:
    # The ids are drawn too: the mutations below depend on where the quotes fall in the text.
    document = valid_body(vendor, draw(st.uuids()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        if draw(st.booleans()) and path and isinstance(document, dict):
            try:
                parent = document
                for step in path[:-1]:
                    parent = parent[step]
                if isinstance(parent, dict):
                    del parent[path[-1]]  # a field left out
                    continue
            except (KeyError, IndexError, TypeError):
                pass
        document = _set(document, path, draw(_wrong_values))
    text = json.dumps(document).encode()
    for stand_in, literal in _LITERALS.items():
        text = text.replace(stand_in.strip('"').join(['"', '"']).encode(), literal)
    for _ in range(draw(st.integers(0, 3))):
        text = draw(_byte_mutation(text))
    return text


@st.composite
def _byte_mutation(draw: st.DrawFn, text: bytes) -> bytes:
    kind = draw(st.sampled_from(["utf8", "truncate", "bom", "nul", "dup_key", "escape"]))
    quotes = [i for i, b in enumerate(text) if b == ord('"')] or [0]
    at = draw(st.sampled_from(quotes)) + 1  # just inside a string or a key
    if kind == "utf8":
        return text[:at] + draw(st.sampled_from(_BAD_UTF8)) + text[at:]
    if kind == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "bom":
        return b"\xef\xbb\xbf" + text
    if kind == "nul":
        return text[:at] + draw(st.sampled_from([b"\x00", b"\\u0000"])) + text[at:]
    if kind == "escape":
        return text[:at] + draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\x41", b"\\u00"])) + text[at:]
    if text.startswith(b"{") and len(quotes) > 1:
        key = text[quotes[0] : quotes[1] + 1]
        return b"{" + key + b':"first",' + text[1:]  # the same key twice
    return text


vendors = st.sampled_from(list(Vendor))


@st.composite
def hostile_envelope(draw: st.DrawFn) -> RawEnvelope:
    vendor = draw(vendors)
    return to_envelope(vendor, draw(hostile_payload(vendor)))
