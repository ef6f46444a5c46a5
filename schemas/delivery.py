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


class Attempt(msgspec.Struct, frozen=True, kw_only=True, tag_field="v", tag=2):
    """A task on the attempts queue (msgpack, there and in its delay tiers): make attempt number
    `attempt` of a delivery, not before `not_before` (unix time; a task that comes back early from a
    delay tier, or is parked while its endpoint is busy, goes back without counting as an attempt).

    `step` is the attempt's position in the retry schedule: it follows `attempt` except after a
    replay, which starts a new series. The event's body is read from PostgreSQL when the attempt is
    made, so every attempt sends what the router stored, and a task stays small."""

    delivery_id: str
    subscription_id: str
    event_id: str
    attempt: int = 1
    step: int = 0
    not_before: float = 0.0


class TaskV1(msgspec.Struct, frozen=True, kw_only=True, tag_field="v", tag=1):
    """The task as workers before issue 20 wrote it: still in a delay tier after an upgrade, so it is
    read and carried on as an `Attempt`. `made` was the attempts recorded when it was written (-1:
    unknown); a `guard` was to follow up an attempt that may have been made without its follow-up."""

    delivery_id: str
    subscription_id: str
    event_id: str
    step: int = 0
    not_before: float = 0.0
    body: bytes = b""
    made: int = -1
    guard: bool = False


Task = Attempt | TaskV1


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
_task_decoder = msgspec.msgpack.Decoder(Task)
_json = msgspec.json.Encoder()


def encode_task(task: Attempt) -> bytes:
    return _task_encoder.encode(task)


def decode_task(data: bytes) -> tuple[Attempt, bool]:
    """The attempt a task asks for, and whether it is to follow up an attempt that may be recorded
    already (a v1 guard). Raises msgspec.DecodeError (or ValueError) for what is not a task."""
    match _task_decoder.decode(data):
        case Attempt() as task:
            return task, False
        case TaskV1() as old:
            # attempt 0: "the next one", whatever has been recorded (v1 did not always know).
            attempt = old.made + 1 if old.made >= 0 else 0
            task = Attempt(
                delivery_id=old.delivery_id,
                subscription_id=old.subscription_id,
                event_id=old.event_id,
                attempt=attempt,
                step=old.step,
                not_before=old.not_before,
            )
            return task, old.guard


def encode_operational(event: OperationalEvent) -> bytes:
    return _json.encode(event)


def encode_verification(body: Verification) -> bytes:
    return _json.encode(body)
