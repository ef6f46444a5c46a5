"""Testpress exam webhook: one JSON object per attempt start and completion."""

from datetime import datetime
from typing import Any

import msgspec


class TestpressExam(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    title: str | None = None
    duration: float | str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class TestpressSubjectStat(msgspec.Struct, frozen=True, kw_only=True):
    subject_name: str | None = None
    parent_subject_id: int | None = None
    correct_answers_count: int | None = None
    incorrect_answers_count: int | None = None
    partial_correct_answers_count: int | None = None
    unanswered_count: int | None = None
    answered_count: int | None = None
    total_count: int | None = None
    score: float | None = None


class TestpressAttempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt_id: int
    attempt_state: str
    key: str
    hash: str
    user_id: int
    username: str | None = None
    email: str | None = None
    exam: TestpressExam | None = None
    total_count: int | None = None
    correct_answers_count: int | None = None
    incorrect_answers_count: int | None = None
    unanswered_answers_count: int | None = None
    partial_correct_answers_count: int | None = None
    score: float | None = None
    percentage: float | None = None
    accuracy: float | None = None
    speed: float | None = None
    attempt_start_time: datetime | None = None
    completed_on: datetime | None = None
    institute_attempt_id: str | int | None = None
    subject_stats: list[TestpressSubjectStat] = []
    difficulty_level_stats: dict[str, Any] = {}
