"""Synap webhooks: nested JSON, one event per URL.

Only the results-released body is documented in full; the other events share its building blocks
(`user`, `attempt`, `exam`, `meta`) and may leave any of them out, so everything but `meta` is optional.
"""

from datetime import datetime
from typing import Any

import msgspec


class SynapUser(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str | None = None
    email: str | None = None
    subPortalId: str | None = None
    customAttributes: dict[str, str | float | bool | None] = {}


class SynapPortal(msgspec.Struct, frozen=True, kw_only=True):
    id: str


class SynapMeta(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime
    eventName: str | None = None


class SynapGrade(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    isPass: bool
    minScore: float


class SynapGradeCriteria(msgspec.Struct, frozen=True, kw_only=True):
    grades: list[SynapGrade] = []


class SynapAttemptResults(msgspec.Struct, frozen=True, kw_only=True):
    markingStatus: str | None = None
    pendingMarks: float | None = None
    status: str | None = None


class SynapAttemptState(msgspec.Struct, frozen=True, kw_only=True):
    isRevoked: bool | None = None
    isStarted: bool | None = None
    timeStarted: datetime | None = None
    timeCompleted: datetime | None = None
    timeSpentInMs: float | None = None
    results: SynapAttemptResults | None = None
    responseQuestionMap: list[list[str]] | None = None


class SynapMarks(msgspec.Struct, frozen=True, kw_only=True):
    maxPoints: float | None = None
    credits: float | None = None
    penalties: float | None = None
    points: float | None = None


class SynapAudit(msgspec.Struct, frozen=True, kw_only=True):
    finalisedBy: str | None = None
    finalisedAt: datetime | None = None
    releasedBy: str | None = None
    releasedAt: datetime | None = None


class SynapRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str


class SynapAttempt(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    score: float | None = None
    scoreFrac: float | None = None
    totalAnsweredCorrectly: float | None = None
    grade: SynapGrade | None = None
    gradeCriteria: SynapGradeCriteria | None = None
    isExam: bool | None = None
    state: SynapAttemptState | None = None
    marks: SynapMarks | None = None
    totalQuestions: int | None = None
    totalAnswered: int | None = None
    tags: dict[str, list[str]] | None = None
    timeStarted: datetime | None = None
    timeCompleted: datetime | None = None
    timeSpentInMs: float | None = None
    status: str | None = None
    examStatus: str | None = None
    proctorStatus: str | None = None
    assignedModeratingMarkers: list[SynapRef] | None = None
    marker: SynapRef | None = None
    audit: SynapAudit | None = None
    resitCount: int | None = None


class SynapTest(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str | None = None


class SynapUserGroup(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str | None = None


class SynapExam(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str | None = None
    attr: dict[str, Any] | None = None
    resitCount: int | None = None
    sourceTests: list[str] | None = None
    userGroup: SynapUserGroup | None = None


class SynapWebhook(msgspec.Struct, frozen=True, kw_only=True):
    meta: SynapMeta
    id: str | None = None
    user: SynapUser | None = None
    portal: SynapPortal | None = None
    attempt: SynapAttempt | None = None
    test: SynapTest | None = None
    exam: SynapExam | None = None
    timeStarted: datetime | None = None
    timeCompleted: datetime | None = None
    timeSpentInMs: float | None = None
