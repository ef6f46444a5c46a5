"""Testpress exam webhook: one JSON object per attempt start and completion.

Required are `attempt_id` (the exam the event is about), `attempt_state` (what happened) and `hash`
(part of the event's natural key: two completions of one attempt differ by it). `key` and `user_id`
are signed, so the ingress insists on them; the event itself does not need them. The `exam` object
may be absent, null or `{}`. Fields the event does not carry (`total_count`, `accuracy`, `speed`,
`difficulty_level_stats`, the exam's dates and duration, the per-subject counts, …) are not
declared, so whatever is sent there cannot reject a result. The value rules are in
`workers/vendors/testpress.py`.
"""

from datetime import datetime

import msgspec


class TestpressExam(msgspec.Struct, frozen=True, kw_only=True):
    id: int | None = None
    title: str | None = None


class TestpressSubjectStat(msgspec.Struct, frozen=True, kw_only=True):
    subject_name: str | None = None
    score: float | None = None


class TestpressAttempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt_id: int
    attempt_state: str
    hash: str
    user_id: int | None = None
    username: str | None = None
    email: str | None = None
    exam: TestpressExam | None = None
    correct_answers_count: int | None = None
    incorrect_answers_count: int | None = None
    unanswered_answers_count: int | None = None
    score: float | None = None
    percentage: float | None = None
    attempt_start_time: datetime | None = None
    completed_on: datetime | None = None
    institute_attempt_id: str | int | None = None
    subject_stats: list[TestpressSubjectStat] | None = None


class TestpressSigned(msgspec.Struct):
    """What the ingress reads to check the hash: only the fields it covers, each kept as the raw JSON text the vendor sent, so that a
    number keeps its literal form (`62.00` stays `62.00`) instead of being re-rendered."""

    key: msgspec.Raw
    attempt_id: msgspec.Raw
    correct_answers_count: msgspec.Raw
    incorrect_answers_count: msgspec.Raw
    unanswered_answers_count: msgspec.Raw
    percentage: msgspec.Raw
    score: msgspec.Raw
    user_id: msgspec.Raw
    hash: msgspec.Raw
