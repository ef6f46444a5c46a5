"""`resultbus.erasure.completed`: an operational event (see schemas/delivery.py) telling consumers of
the results exchange that a candidate's data was erased here, so that they erase their copies.

It names what was erased by id (events, webhooks, exams, orders) and never carries the erased values:
a consumer holds what it got from us under those ids.
"""

from datetime import datetime
from typing import Final

import msgspec

ERASURE_COMPLETED_KEY: Final = "resultbus.erasure.completed"
ERASURE_COMPLETED_SCHEMA: Final = "resultbus.erasure-completed/v1"


class ExamId(msgspec.Struct, frozen=True):
    vendor: str
    exam_key: str


class ErasureCompleted(msgspec.Struct, frozen=True, kw_only=True):
    schema: str = ERASURE_COMPLETED_SCHEMA
    id: str  # the same however often it is published
    type: str = "erasure.completed"
    erasure_id: str
    subject_kind: str  # email | candidate_id | external_id
    vendor: str | None = None
    requested_at: datetime
    completed_at: datetime
    event_ids: list[str]
    webhook_ids: list[str]
    exams: list[ExamId]
    order_ids: list[str] = []
    scores_kept: bool = False


_encoder = msgspec.json.Encoder()


def encode_erasure(event: ErasureCompleted) -> bytes:
    return _encoder.encode(event)
