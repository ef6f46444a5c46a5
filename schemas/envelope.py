"""The raw envelope: what the ingress puts on the broker, msgpack-encoded.

It carries the vendor's body byte for byte, so that a worker (or a replay, months later) sees exactly
what the vendor sent. The ingress adds only what it learned while authenticating.
"""

from datetime import datetime

import msgspec

from schemas.vendor import Vendor

ENVELOPE_CONTENT_TYPE = "application/msgpack"


class RawEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    v: int = 1
    id: str
    source: str
    vendor: Vendor
    received_at: datetime
    content_type: str
    body: bytes
    # Synap names its event in the URL, not the body: the ingress copies it from the source.
    event: str | None = None
    remote: str | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(RawEnvelope)


def encode_envelope(envelope: RawEnvelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(data: bytes) -> RawEnvelope:
    return _decoder.decode(data)
