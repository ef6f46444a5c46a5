"""Wire types of delivering results to subscribers: the task a delivery worker acts on, and the
operational events resultbus publishes about its own deliveries.

Operational events go on the results exchange under routing keys that start with `resultbus.`: no
vendor is called that, so they never collide with `<vendor>.<type>` keys. Bind `resultbus.#` to
receive them; delivery workers never deliver them to subscribers (a failing endpoint would otherwise
feed on the news of its own failures).
"""

from datetime import datetime
from typing import Final

import msgspec

OPERATIONAL_PREFIX: Final = "resultbus."
DELIVERY_FAILED_KEY: Final = "resultbus.delivery.failed"
SUBSCRIPTION_DISABLED_KEY: Final = "resultbus.subscription.disabled"
SUBSCRIPTION_UNSUBSCRIBED_KEY: Final = "resultbus.subscription.unsubscribed"

DELIVERY_FAILED_SCHEMA: Final = "resultbus.delivery-failed/v1"
SUBSCRIPTION_DISABLED_SCHEMA: Final = "resultbus.subscription-disabled/v1"
SUBSCRIPTION_UNSUBSCRIBED_SCHEMA: Final = "resultbus.subscription-unsubscribed/v1"
VERIFICATION_SCHEMA: Final = "resultbus.verification/v1"


def is_operational(routing_key: str) -> bool:
    return routing_key.startswith(OPERATIONAL_PREFIX)


class DeliveryTask(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt to make (msgpack on the attempts queue and its delay tiers).

    `step` is the position in the retry schedule; `not_before` lets a task come back early from a
    shorter delay tier (or be parked while its endpoint is busy) without counting as an attempt.
    The body travels with the task so that every attempt sends, and signs, the same bytes.
    """

    v: int = 1
    delivery_id: str
    subscription_id: str
    event_id: str
    step: int = 0
    not_before: float = 0.0  # unix time
    body: bytes
    # The delivery's recorded attempts when this task was scheduled: once the count is past it, this
    # task's attempt is made (a copy of the task, or one that came back after its attempt). -1: unknown.
    made: int = -1
    # A guard: the fan-out may have made the attempt `made` + 1 itself and handed it over when it
    # was slow (or failed): if that attempt is recorded, publish what follows it; if not, make it.
    guard: bool = False


class DeliveryFailed(msgspec.Struct, frozen=True, kw_only=True):
    schema: str = DELIVERY_FAILED_SCHEMA
    id: str  # unique per failure, so that a consumer can drop duplicates
    type: str = "delivery.failed"
    delivery_id: str
    subscription_id: str
    event_id: str
    endpoint: str
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    failed_at: datetime


class SubscriptionDisabled(msgspec.Struct, frozen=True, kw_only=True):
    schema: str = SUBSCRIPTION_DISABLED_SCHEMA
    id: str
    type: str = "subscription.disabled"
    subscription_id: str
    endpoint: str
    reason: str
    disabled_at: datetime


class SubscriptionUnsubscribed(msgspec.Struct, frozen=True, kw_only=True):
    """The dead-endpoint checker dropped a subscription: its endpoint failed `failed_checks`
    verification calls in a row, the first at `failing_since`."""

    schema: str = SUBSCRIPTION_UNSUBSCRIBED_SCHEMA
    id: str
    type: str = "subscription.unsubscribed"
    subscription_id: str
    endpoint: str
    reason: str
    failed_checks: int
    failing_since: datetime
    last_error: str
    unsubscribed_at: datetime


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """The body of the checker's verification call (JSON, signed like a delivery). A subscriber
    answers 2xx; it carries no data and asks for no action."""

    schema: str = VERIFICATION_SCHEMA
    id: str
    type: str = "verification"
    timestamp: datetime


OperationalEvent = DeliveryFailed | SubscriptionDisabled | SubscriptionUnsubscribed

_task_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(DeliveryTask)
_json = msgspec.json.Encoder()


def encode_task(task: DeliveryTask) -> bytes:
    return _task_encoder.encode(task)


def decode_task(data: bytes) -> DeliveryTask:
    return _task_decoder.decode(data)


def encode_operational(event: OperationalEvent) -> bytes:
    return _json.encode(event)


def encode_verification(body: Verification) -> bytes:
    return _json.encode(body)
