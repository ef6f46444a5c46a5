"""Synap webhooks: nested JSON, one event per URL.

Only the results-released body is documented in full; the other events share its building blocks
(`user`, `attempt`, `exam`, `meta`) and may leave any of them out. Only `meta.timestamp` is required
here; which ids an event needs depends on the event and is decided in `workers/vendors/synap.py`.

Only the fields the normalized event carries are declared. The rest of the documented body
(`user.customAttributes`, `user.subPortalId`, `attempt.gradeCriteria`, `attempt.tags`, `attempt.marker`,
`attempt.assignedModeratingMarkers`, `attempt.audit`, the `state` details but `results`, every
`timeStarted`/`timeCompleted`, `exam.attr`, `exam.sourceTests`, `exam.userGroup`, `resitCount`, …) is
skipped unread: absent, empty, null or shaped otherwise, it cannot reject a result the event does not
take anything from. Every declared field may be absent or null; a nested object may be `{}`.
"""

from datetime import datetime

import msgspec


class SynapUser(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    name: str | None = None
    email: str | None = None


class SynapPortal(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None


class SynapMeta(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime
    eventName: str | None = None


class SynapGrade(msgspec.Struct, frozen=True, kw_only=True):
    label: str | None = None
    isPass: bool | None = None


class SynapAttemptResults(msgspec.Struct, frozen=True, kw_only=True):
    markingStatus: str | None = None


class SynapAttemptState(msgspec.Struct, frozen=True, kw_only=True):
    results: SynapAttemptResults | None = None


class SynapMarks(msgspec.Struct, frozen=True, kw_only=True):
    maxPoints: float | None = None


class SynapAttempt(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    score: float | None = None
    scoreFrac: float | None = None
    # Counts are `number` in Synap's TypeScript: decoded as floats, checked to be whole.
    totalAnsweredCorrectly: float | None = None
    totalQuestions: float | None = None
    totalAnswered: float | None = None
    grade: SynapGrade | None = None
    state: SynapAttemptState | None = None
    marks: SynapMarks | None = None
    timeSpentInMs: float | None = None
    status: str | None = None
    examStatus: str | None = None
    proctorStatus: str | None = None


class SynapTest(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    title: str | None = None


class SynapExam(msgspec.Struct, frozen=True, kw_only=True):
    id: str | None = None
    name: str | None = None


class SynapWebhook(msgspec.Struct, frozen=True, kw_only=True):
    meta: SynapMeta
    user: SynapUser | None = None
    portal: SynapPortal | None = None
    attempt: SynapAttempt | None = None
    test: SynapTest | None = None
    exam: SynapExam | None = None
