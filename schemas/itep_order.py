"""Wire types of ordering iTEP test IDs through resultbus (iTEP's "fulfillment" API).

An order comes in as JSON, on the admin API (`POST /v1/itep/orders`) or on the command queue
`<prefix>.itep.orders`; its JSON Schema is published as docs/itep-order.schema.json. Every change of
an order's state goes out on the results exchange as an operational event under
`resultbus.itep.order.<change>` (never fanned out to subscribers, like every `resultbus.` key).
"""

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from schemas.delivery import OPERATIONAL_PREFIX

ORDER_CHANGED_SCHEMA: Final = "resultbus.itep-order-changed/v1"
ORDER_REPLY_SCHEMA: Final = "resultbus.itep-order-reply/v1"
ORDER_ROUTING_PREFIX: Final = f"{OPERATIONAL_PREFIX}itep.order."
# The key resultbus adds to `assigned-to`: iTEP's admin pages show it beside the test ID, so a test
# ID given to an order can be found there (after a timeout, say) by the order id.
ASSIGNED_TO_ORDER_KEY: Final = "resultbus-order-id"


class Status:
    """An order's statuses. After `test_id_assigned` the order follows its exam (the normalized
    statuses of schemas/event.py: finished, in_review, technical_difficulty, completed, invalidated,
    reset, disabled)."""

    REJECTED: Final = "rejected"  # failed validation: stored with its problems, never sent
    ORDERED: Final = "ordered"  # waiting to be sent
    SENDING: Final = "sending"  # a call to iTEP is under way
    RETRYING: Final = "retrying"  # iTEP was not reached, or answered 5xx: waiting in a delay tier
    UNCONFIRMED: Final = "unconfirmed"  # sent, no usable answer: iTEP may have assigned a test ID
    FAILED: Final = "failed"  # iTEP refused it, or every retry failed
    TEST_ID_ASSIGNED: Final = "test_id_assigned"


# Changes recorded in an order's history that are not a status of their own.
CHANGE_RESULT: Final = "result"  # a result event for the order's exam that did not move it
CHANGE_CONFLICT: Final = (
    "conflict"  # a result contradicts the order: a second test ID, or a test ID given twice
)


def order_routing_key(change: str) -> str:
    return ORDER_ROUTING_PREFIX + change


Text = Annotated[str, Meta(max_length=500)]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern="^[^@\\s]+@[^@\\s]+$")]


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One test ID to order from iTEP for one candidate.

    Field names of `registration` and iTEP's values are case-sensitive, as iTEP says; the valid
    names and values are iTEP's (docs/itep-orders.md lists them). `registration.trExternal_ID` and
    `assigned_to["resultbus-order-id"]` are set by resultbus to the order id."""

    reference: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description=(
                "The caller's own id for this order, unique: an order sent again with the same"
                " reference (a retry after a lost answer) is the same order, never a second test ID."
            ),
        ),
    ]
    product_code: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            description=(
                "iTEP product code: `GTX-…` returns a test ID; `STX-…` also emails it to the candidate"
                " (then `email` is required)."
            ),
        ),
    ]
    email: Annotated[
        Email | None, Meta(description="The candidate's address (STX: where iTEP sends the test ID).")
    ] = None
    bcc: Annotated[Email | None, Meta(description="STX: a copy of iTEP's email goes here.")] = None
    assigned_to: Annotated[
        dict[str, Any],
        Meta(
            description=(
                "iTEP's `assigned-to` JSON, shown beside the test ID in iTEP's admin pages; iTEP"
                " recommends at least the candidate's name, email and an id of yours."
            )
        ),
    ] = {}
    registration: Annotated[
        dict[str, str | int],
        Meta(
            description="iTEP's registration fields (`Last_Name`, `DOB_Month`, `Gender`, …), pre-filled on the test."
        ),
    ] = {}


class OrderReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to a queued order, sent to its `reply_to` (with its `correlation_id`) when set."""

    schema: str = ORDER_REPLY_SCHEMA
    id: str | None = None  # the order id; None when the message was not an order at all
    reference: str | None = None
    status: str | None = None
    problems: list[str] = []
    error: str | None = None


class OrderChanged(msgspec.Struct, frozen=True, kw_only=True):
    """An order's state changed (operational event, `resultbus.itep.order.<change>`)."""

    schema: str = ORDER_CHANGED_SCHEMA
    id: str  # unique per change: consumers drop duplicates by it
    type: str  # "itep.order.<change>"
    change: str  # the new status, or `conflict`
    order_id: str
    reference: str
    product_code: str
    status: str  # the order's status after the change
    test_id: str | None = None
    problems: list[str] = []
    detail: str | None = None
    event_id: str | None = None  # the result event behind the change, if any
    changed_at: datetime


_request_decoder = msgspec.json.Decoder(OrderRequest)
_changed_decoder = msgspec.json.Decoder(OrderChanged)
_json = msgspec.json.Encoder()


def decode_order_request(data: bytes) -> OrderRequest:
    return _request_decoder.decode(data)


def decode_order_changed(data: bytes) -> OrderChanged:
    return _changed_decoder.decode(data)


def encode(value: OrderReply | OrderChanged | OrderRequest) -> bytes:
    return _json.encode(value)


def order_request_json_schema() -> dict[str, Any]:
    return msgspec.json.schema(OrderRequest)
