"""Property tests of the decoders: valid payloads decode; arbitrary input only ever raises the typed
rejection, never anything else that would crash a worker."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devkit import samples
from schemas.envelope import RawEnvelope, decode_envelope, encode_envelope
from schemas.vendor import Vendor
from vendors.base import RejectedWebhook
from workers.router.normalize import normalize

CONTENT_TYPES = {
    Vendor.ITEP: [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
    ],
    Vendor.INSPERA: ["application/json"],
    Vendor.SYNAP: ["application/json"],
    Vendor.TESTPRESS: ["application/json"],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


def _only_rejects(env: RawEnvelope) -> None:
    try:
        normalize(env)
    except RejectedWebhook as rejection:
        assert rejection.reason


@settings(max_examples=300, deadline=None)
@given(vendor=st.sampled_from(list(Vendor)), body=st.binary(max_size=300), data=st.data())
def test_arbitrary_bytes_raise_only_the_typed_error(vendor: Vendor, body: bytes, data: st.DataObject) -> None:
    content_type = data.draw(st.sampled_from(CONTENT_TYPES[vendor]))
    _only_rejects(samples.envelope(vendor, body, content_type=content_type, event="attempt.completed"))


@settings(max_examples=300, deadline=None)
@given(vendor=st.sampled_from(list(Vendor)), value=json_values)
def test_arbitrary_json_raises_only_the_typed_error(vendor: Vendor, value: Any) -> None:
    body = json.dumps(value).encode()
    if vendor is Vendor.ITEP:
        body, content_type = samples.itep_urlencoded(value)
    else:
        content_type = "application/json"
    _only_rejects(samples.envelope(vendor, body, content_type=content_type, event="exam.submitted"))


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(base)
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=3).map(lambda m: {**base, **m})


@settings(max_examples=200, deadline=None)
@given(body=_mutations(samples.ITEP_COMPLETE))
def test_mutated_itep_bodies_decode_or_are_rejected(body: dict[str, Any]) -> None:
    raw, content_type = samples.itep_multipart(body)
    _only_rejects(samples.envelope(Vendor.ITEP, raw, content_type=content_type))


@settings(max_examples=200, deadline=None)
@given(body=_mutations(samples.testpress()))
def test_mutated_testpress_bodies_decode_or_are_rejected(body: dict[str, Any]) -> None:
    _only_rejects(samples.envelope(Vendor.TESTPRESS, samples.as_json(body)))


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(
        ["Finished", "Complete", "Completed", "Invalidated", "Problem", "Ready", "Review"]
    ),
    test_id=st.text(min_size=1, max_size=20).filter(str.strip),  # a blank TestID is no identity
    level=st.floats(min_value=0, max_value=6, allow_nan=False).map(lambda v: f"{v:.1f}"),
)
def test_valid_itep_payloads_always_decode(status: str, test_id: str, level: str) -> None:
    raw, content_type = samples.itep_urlencoded(samples.itep(status, test_id=test_id, Overall_Level=level))
    [item] = normalize(samples.envelope(Vendor.ITEP, raw, content_type=content_type))
    assert item.event.exam is not None and item.event.exam.key == test_id


@settings(max_examples=100, deadline=None)
@given(attempt=st.integers(min_value=1, max_value=2**40), state=st.sampled_from(["started", "completed"]))
def test_valid_testpress_payloads_always_decode(attempt: int, state: str) -> None:
    [item] = normalize(samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(state, attempt))))
    assert item.event.exam is not None and item.event.exam.attempt_id == str(attempt)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200), vendor=st.sampled_from(list(Vendor)))
def test_envelope_round_trip(body: bytes, vendor: Vendor) -> None:
    env = samples.envelope(vendor, body)
    assert decode_envelope(encode_envelope(env)) == env
