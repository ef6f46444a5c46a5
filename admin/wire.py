"""The admin API's JSON shapes, as msgspec Structs: request bodies and query strings are decoded and
validated by them, responses encoded from them, and the OpenAPI document generated from them."""

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gradebook.config import Destination
from schemas.event import ResultEvent, Status
from schemas.vendor import Vendor

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Filter = Annotated[list[Name], Meta(max_length=50)]
Limit = Annotated[int, Meta(ge=1, le=500)]
Uuid = Annotated[
    str, Meta(pattern="^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2048,
        pattern="^[Hh][Tt][Tt][Pp][Ss]?://",
        description="http(s) URL of the subscriber",
    ),
]
Secret = Annotated[str, Meta(pattern="^whsec_[A-Za-z0-9+/=]+$", max_length=200)]
Description = Annotated[str, Meta(max_length=500)]


class Error(msgspec.Struct, frozen=True):
    error: str


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """At most `count` deliveries per second or per minute to the subscription's endpoint, however
    many delivery workers run. Subscriptions on one endpoint share one limit: the strictest of
    theirs. Deliveries over it wait in the broker (their attempt log notes `rate_limited`)."""

    count: Annotated[int, Meta(ge=1, le=10000)]
    per: Literal["second", "minute"]


# Of one exam's events, a subscription receives every one in order (`all`), or, when some wait (its
# endpoint is down, or retrying one), only the newest (`latest`: the others are `superseded`).
DeliveryOrder = Annotated[
    Literal["all", "latest"],
    Meta(
        description=(
            "How one exam's events reach the subscription: `all` (default), every event, in the"
            " exam's order (a later one waits while an earlier one is pending or retrying); `latest`,"
            " in order too, but an event still waiting is superseded (not sent) once a newer one of"
            " the same exam is due."
        )
    ),
]
# waiting: behind an earlier delivery of the same exam; held: a gradebook's candidate not mapped yet;
# superseded: a newer event of the exam went instead.
DeliveryStatus = Literal["waiting", "pending", "held", "succeeded", "failed", "cancelled", "superseded"]


class SubscriptionCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A webhook subscription (`url`), or a gradebook one (`destination`: its URL is the destination's)."""

    url: Url | None = None
    description: Description | None = None
    vendors: Annotated[list[Vendor], Meta(max_length=10)] = []
    sources: Filter = []
    # Exact types (`completed`, `event.qti_export_ready`) or a prefix ending in `*` (`event.*`).
    event_types: Filter = []
    secret: Secret | None = None  # generated when not given
    rate_limit: RateLimit | None = None  # none: as fast as the workers can send
    delivery_order: DeliveryOrder = "all"
    destination: Destination | None = None  # none: a Standard Webhooks POST to `url`


class SubscriptionUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields left out stay as they are. `status: active` re-enables (and starts the endpoint afresh)."""

    url: Url | None = None
    description: Description | None = None
    vendors: Annotated[list[Vendor], Meta(max_length=10)] | None = None
    sources: Filter | None = None
    event_types: Filter | None = None
    status: Literal["active", "disabled"] | None = None
    # Left out: unchanged; null: no limit any more.
    rate_limit: RateLimit | msgspec.UnsetType | None = msgspec.UNSET
    delivery_order: DeliveryOrder | None = None
    destination: Destination | None = None  # a gradebook subscription's new configuration, same kind


class SecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    masked: str
    created_at: datetime
    expires_at: datetime | None = None


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    endpoint: str  # the URL normalized: subscriptions on one endpoint share its health checks
    description: str | None = None
    vendors: list[str]
    sources: list[str]
    event_types: list[str]
    status: Literal["active", "disabled", "unsubscribed"]
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    secrets: list[SecretInfo]
    rate_limit: RateLimit | None = None
    delivery_order: DeliveryOrder = "all"
    destination_kind: Literal["webhook", "oneroster", "caliper"] = "webhook"
    destination: Destination | None = None


class SubscriptionCreated(msgspec.Struct, frozen=True, kw_only=True):
    subscription: Subscription
    secret: str  # shown in full this once


class Subscriptions(msgspec.Struct, frozen=True):
    subscriptions: list[Subscription]


class SubscriptionsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Literal["active", "disabled", "unsubscribed"] | None = None
    limit: Limit = 100


class RotateSecret(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    secret: Secret | None = None  # generated when not given
    # How long the secrets in use keep signing beside the new one.
    overlap_seconds: Annotated[int, Meta(ge=0, le=30 * 86400)] = 86400


class SecretRotated(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    previous_expires_at: datetime


class EventType(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    kind: Literal["status", "vendor_event", "pattern"]
    description: str
    vendors: list[str]


class EventTypes(msgspec.Struct, frozen=True):
    event_types: list[EventType]


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    vendor: str
    type: str
    status: str | None = None
    exam_key: str | None = None
    occurred_at: datetime | None = None
    received_at: datetime
    stored_at: datetime
    applied: bool
    event: ResultEvent


class Events(msgspec.Struct, frozen=True):
    events: list[StoredEvent]


# A query string's time: a date and time (no zone: UTC), or a date alone (its midnight, UTC), which
# the handlers' query reader (common.times.parse_time) reads before these Structs see it.
Since = Annotated[
    datetime,
    Meta(description="at or after: 2026-11-22T08:00:00+01:00, or a date (2026-11-22: midnight UTC)"),
]
Until = Annotated[datetime, Meta(description="before: a date and time, or a date (its midnight, UTC)")]
# The same in a JSON body: a string, read by the same parser (a JSON datetime would refuse a date).
TimeText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="a date and time (2026-11-22T08:00:00+01:00; no zone: UTC), or a date alone "
        "(2026-11-22: its midnight, UTC)",
    ),
]
Order = Literal["newest", "oldest"]


class EventsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    vendor: Vendor | None = None
    exam_key: Name | None = None
    type: Name | None = None
    since: Since | None = None  # stored at or after
    until: Until | None = None  # stored before
    order: Order = "newest"  # as deliveries: the latest first; `oldest` to read forward from `since`
    limit: Limit = 100


class Exam(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    exam_key: str
    status: str | None = None
    occurred_at: datetime | None = None
    event_id: str | None = None
    updated_at: datetime
    history: list[StoredEvent]  # every event of the exam, applied or not, oldest first


class ExamSummary(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    exam_key: str
    status: str | None = None
    occurred_at: datetime | None = None
    event_id: str | None = None
    updated_at: datetime


class Exams(msgspec.Struct, frozen=True, kw_only=True):
    """A page of exams, the most recently updated first; `next` is the `cursor` of the next page."""

    exams: list[ExamSummary]
    next: str | None = None


Cursor = Annotated[str, Meta(max_length=500, description="`next` of the previous page")]


class ExamQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """With `key` (and `vendor`): that exam and its history. Without: a page of exams, filtered."""

    vendor: Vendor | None = None
    key: Name | None = None
    status: Name | None = None
    since: Since | None = None  # updated at or after
    until: Until | None = None  # updated before
    limit: Limit = 100
    cursor: Cursor | None = None


class RejectedWebhook(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    vendor: str
    received_at: datetime
    stored_at: datetime
    content_type: str
    remote: str | None = None
    reason: str | None = None
    size: int
    body_preview: str  # the first bytes, as text (invalid UTF-8 replaced)
    # What the body names, where it says, read as the vendor's normalizer reads it: the exam
    # (`exam_key`, with `vendor`: GET /v1/exams?vendor=&key=), the test, the candidate.
    exam_key: str | None = None
    test_id: str | None = None
    external_id: str | None = None
    email: str | None = None


class RejectedWebhooks(msgspec.Struct, frozen=True, kw_only=True):
    """Newest first by arrival; `next` is the `cursor` of the next (older) page."""

    rejected: list[RejectedWebhook]
    next: str | None = None


class RejectedQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every filter given must match. The body's names (`test_id`, `external_id`, `exam_key`,
    `email`, compared in lower case) are read from the vendor's bytes as its normalizer would."""

    source: Name | None = None
    vendor: Vendor | None = None
    since: Since | None = None  # received at or after
    until: Until | None = None  # received before
    test_id: Name | None = None
    external_id: Name | None = None
    exam_key: Name | None = None
    email: Name | None = None
    limit: Limit = 100
    cursor: Cursor | None = None


class AttemptRow(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: float
    error: str | None = None
    outcome: str
    next_attempt_at: datetime | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    event_id: str
    event_type: str
    vendor: str | None = None  # and exam_key: the exam whose order it keeps (events stored by a router)
    exam_key: str | None = None
    status: DeliveryStatus
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    attempt_log: list[AttemptRow]


class Deliveries(msgspec.Struct, frozen=True):
    deliveries: list[Delivery]


class DeliveriesQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: DeliveryStatus | None = None
    since: Since | None = None  # created at or after
    limit: Limit = 100


class Replay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Either one event (`event_id`) or every failed delivery of the subscription since `since`."""

    event_id: Uuid | None = None
    since: TimeText | None = None  # failed deliveries created at or after


class TestEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the test event looks like; every field may be left out (the body may be empty)."""

    type: Status = Status.COMPLETED  # the status it reports
    vendor: Vendor | None = None  # none: the subscription's first vendor filter, else itep


class TestEventSent(msgspec.Struct, frozen=True, kw_only=True):
    """The subscriber's answer to one test event (sent at once, not stored, never retried)."""

    ok: bool  # a 2xx
    status: int | None = None  # the HTTP status; none: no answer (refused address, timeout, …)
    latency_ms: float
    error: str | None = None  # the subscriber's answer when not a 2xx, or why there was none
    url: str
    subscription_status: str  # a test is sent whatever the status, to check an endpoint before enabling
    webhook_id: str  # the `webhook-id` it carried: the event's id, a new one each time
    event: ResultEvent  # what was sent, byte for byte as encoded


class Replayed(msgspec.Struct, frozen=True):
    deliveries: list[str]  # the ids of the deliveries queued again


class Health(msgspec.Struct, frozen=True):
    status: str
