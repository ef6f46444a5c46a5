"""Distinct, realistic webhooks built from the test samples: every one a new event of its own."""

import uuid
from datetime import UTC, datetime, timedelta

from devkit import samples
from schemas.envelope import RawEnvelope
from schemas.vendor import Vendor

_EPOCH = datetime(2024, 6, 1, tzinfo=UTC)

# The Synap source names its event (Synap sends one event per URL).
SYNAP_EVENT = "exam.resultsReleased"
INSPERA_SOURCE = "inspera-bench"
INSPERA_SECRET = "bench-inspera-secret"


def _stamp(i: int) -> str:
    return (_EPOCH + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_envelope(i: int, run: str) -> RawEnvelope:
    """The i-th envelope of a mix of the four vendors, round robin."""
    match i % 4:
        case 0:
            maker = samples.itep_urlencoded if i % 8 == 0 else samples.itep_multipart
            body, content_type = maker(samples.itep("Complete", test_id=f"T{run}{i:07d}"))
            return samples.envelope(Vendor.ITEP, body, content_type=content_type)
        case 1:
            sent = samples.inspera(timestamp=_stamp(i), context_id=1000 + i % 97, candidate_id=i)
            return samples.envelope(Vendor.INSPERA, samples.as_json(sent))
        case 2:
            sent = samples.synap_released(attempt_id=f"att-{run}-{i}", timestamp=_stamp(i))
            return samples.envelope(Vendor.SYNAP, samples.as_json(sent), event=SYNAP_EVENT)
        case _:
            return samples.envelope(Vendor.TESTPRESS, samples.as_json(samples.testpress(attempt_id=i)))


def run_token() -> str:
    return uuid.uuid4().hex[:6]


def inspera_request(i: int) -> tuple[bytes, dict[str, str]]:
    """A signed Inspera webhook: JSON body and its X-Inspera-Signature."""
    body = samples.as_json(samples.inspera(timestamp=_stamp(i), context_id=2000 + i % 101, candidate_id=i))
    headers = {
        "Content-Type": "application/json",
        "X-Inspera-Signature": samples.inspera_signature(body, INSPERA_SECRET),
    }
    return body, headers
