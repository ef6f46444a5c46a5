"""The AsyncAPI 3.0 document of what resultbus publishes on the results exchange: the normalized
result events and the operational events. Built from the Structs and the topology names, so that
docs/asyncapi.yaml cannot drift from the code (`make schema` writes it, a test compares).

Pure: returns plain data; `python -m schemas asyncapi` prints it as YAML.
"""

from datetime import UTC, date, datetime
from typing import Any, Final

import msgspec

from schemas.delivery import (
    DELIVERY_FAILED_KEY,
    SUBSCRIPTION_DISABLED_KEY,
    SUBSCRIPTION_UNSUBSCRIBED_KEY,
    DeliveryFailed,
    SubscriptionDisabled,
    SubscriptionUnsubscribed,
)
from schemas.erasure import ERASURE_COMPLETED_KEY, ErasureCompleted, ExamId
from schemas.event import SCHEMA_VERSION, Candidate, ExamRef, Grade, Result, ResultEvent, Section, Status
from schemas.itep_order import ORDER_ROUTING_PREFIX, OrderChanged
from schemas.topology import Topology
from schemas.vendor import Vendor

ASYNCAPI_VERSION: Final = "3.0.0"
AMQP_BINDING_VERSION: Final = "0.3.0"
_REF: Final = "#/components/schemas/{name}"
_PERSISTENT: Final = 2

_DESCRIPTION: Final = """\
Every webhook resultbus accepts from an assessment vendor becomes one or more normalized result
events, the same shape for every vendor, published on the topic exchange `{exchange}` (persistent,
JSON, `message_id` = the event's `id`). Bind a durable queue of your own with the routing keys you
need (`#`, `*.completed`, `itep.#`, ...) before resultbus publishes what you need: an exchange keeps
nothing for queues that do not exist yet. Operational events about resultbus's own webhook deliveries
use routing keys starting with `resultbus.`: bind `resultbus.#` to receive them.

Delivery is at least once: drop duplicates by `id`. Exchange names carry the installation's prefix
(`RESULTBUS_AMQP_PREFIX`, default `resultbus`). Generated from the msgspec Structs in `schemas/`
(`make schema`); see docs/consumers.md."""


def _paragraphs(text: str) -> str:
    """Source lines wrapped for the code, joined for the document (one line per paragraph)."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def _exchange_binding(topology: Topology) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": topology.results_exchange,
                "type": "topic",
                "durable": True,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


# Present only while tracing is on (docs/operations.md, "Tracing"): a consumer may continue the trace.
_TRACE_HEADERS: Final = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C Trace Context: the trace this event belongs to, from the vendor's POST on.",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        },
        "tracestate": {"type": "string", "description": "W3C Trace Context, vendor-specific state."},
    },
}


def _message(name: str, title: str, summary: str, schema: str, example: msgspec.Struct) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": _REF.format(name=schema)},
        "headers": _TRACE_HEADERS,
        "bindings": {"amqp": {"messageType": name, "bindingVersion": AMQP_BINDING_VERSION}},
        "examples": [{"name": f"{name}-example", "payload": msgspec.to_builtins(example)}],
    }


_AT: Final = datetime(2026, 11, 21, 23, 46, 42, 520000, tzinfo=UTC)

_RESULT_EXAMPLE: Final = ResultEvent(
    id="0f0e5f8e-5b3c-5d43-9a4e-6c1d2b9f7a10",
    type=Status.COMPLETED.value,
    vendor=Vendor.ITEP,
    source="itep-acme",
    webhook_id="23a205b1-8103-4d15-b814-fd1698b716d9",
    vendor_event="Complete",
    received_at=_AT,
    status=Status.COMPLETED,
    exam=ExamRef(
        key="3279B035APR",
        test_id="3279B035APR",
        taken_on=date(2024, 6, 10),
        version=2,
        state=Status.COMPLETED,
    ),
    candidate=Candidate(external_id="cand-0042", email="ada.lovelace@example.com"),
    result=Result(
        level=4.5,
        cefr="C1",
        grade=Grade(label="C1", passed=True),
        sections=[Section(name="reading", score=100.0, percent=100.0, level=6.0, cefr="C2")],
    ),
)
_FAILED_EXAMPLE: Final = DeliveryFailed(
    id="6b1f7d0e-2f55-4a57-9d0b-3b8e7f2c1a01",
    delivery_id="9a4c2e61-7d3b-4f0e-8c55-1e2d3f4a5b6c",
    subscription_id="2c7e9b14-5a6d-4e3f-9b21-0a1b2c3d4e5f",
    event_id=_RESULT_EXAMPLE.id,
    endpoint="https://hooks.example.com/results",
    attempts=12,
    last_status=502,
    failed_at=_AT,
)
_DISABLED_EXAMPLE: Final = SubscriptionDisabled(
    id="f3d2c1b0-a9e8-4d7c-8b6a-5f4e3d2c1b0a",
    subscription_id=_FAILED_EXAMPLE.subscription_id,
    endpoint=_FAILED_EXAMPLE.endpoint,
    reason="endpoint answered 410 Gone",
    disabled_at=_AT,
)
_UNSUBSCRIBED_EXAMPLE: Final = SubscriptionUnsubscribed(
    id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    subscription_id=_FAILED_EXAMPLE.subscription_id,
    endpoint=_FAILED_EXAMPLE.endpoint,
    reason="endpoint failed 3 verification calls in a row",
    failed_checks=3,
    failing_since=datetime(2026, 11, 21, 7, 46, 42, tzinfo=UTC),
    last_error="connection refused",
    unsubscribed_at=_AT,
)

_ERASURE_EXAMPLE: Final = ErasureCompleted(
    id="5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
    erasure_id="0d6c3f5e-8a53-4b8e-9a55-2b7f0e1c9d41",
    subject_kind="email",
    requested_at=_AT,
    completed_at=_AT,
    event_ids=[_RESULT_EXAMPLE.id],
    webhook_ids=[_RESULT_EXAMPLE.webhook_id],
    exams=[ExamId(vendor="itep", exam_key="3279B035APR")],
)
_ORDER_EXAMPLE: Final = OrderChanged(
    id="7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918",
    type="itep.order.test_id_assigned",
    change="test_id_assigned",
    order_id="c0ffee00-1234-4abc-8def-0123456789ab",
    reference="sis-2026-000123",
    product_code="STX-Academic-Plus",
    status="test_id_assigned",
    test_id="3279B035APR",
    changed_at=_AT,
)

# (channel and message id, routing key, title, summary, Struct, example)
_OPERATIONAL: Final = (
    (
        "deliveryFailed",
        DELIVERY_FAILED_KEY,
        "Delivery failed",
        "A webhook delivery to a subscriber failed every attempt of its retry schedule.",
        DeliveryFailed,
        _FAILED_EXAMPLE,
    ),
    (
        "subscriptionDisabled",
        SUBSCRIPTION_DISABLED_KEY,
        "Subscription disabled",
        "A subscriber's endpoint answered 410 Gone: its subscription is disabled.",
        SubscriptionDisabled,
        _DISABLED_EXAMPLE,
    ),
    (
        "subscriptionUnsubscribed",
        SUBSCRIPTION_UNSUBSCRIBED_KEY,
        "Subscription unsubscribed",
        "The dead-endpoint checker dropped a subscription whose endpoint failed its verification calls.",
        SubscriptionUnsubscribed,
        _UNSUBSCRIBED_EXAMPLE,
    ),
    (
        "erasureCompleted",
        ERASURE_COMPLETED_KEY,
        "Erasure completed",
        "A candidate's data was erased here (by id; never the values): erase your copies of them.",
        ErasureCompleted,
        _ERASURE_EXAMPLE,
    ),
    (
        "itepOrderChanged",
        ORDER_ROUTING_PREFIX + "{change}",
        "iTEP order changed",
        "An iTEP order placed through resultbus changed state (ordered, test_id_assigned, finished, "
        "completed, invalidated, reset, rejected, failed, unconfirmed, conflict).",
        OrderChanged,
        _ORDER_EXAMPLE,
    ),
)


def _send(channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": "send",
        "summary": summary,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": {
            "amqp": {"deliveryMode": _PERSISTENT, "mandatory": False, "bindingVersion": AMQP_BINDING_VERSION}
        },
    }


def asyncapi_document(topology: Topology | None = None) -> dict[str, Any]:
    topology = topology or Topology()
    structs = [ResultEvent, *(row[4] for row in _OPERATIONAL)]
    _, schemas = msgspec.json.schema_components(structs, ref_template=_REF)
    bindings = _exchange_binding(topology)

    channels: dict[str, Any] = {
        "resultEvents": {
            "address": "{vendor}.{type}",
            "title": "Normalized result events",
            "description": (
                "Routing key `<vendor>.<type>`: `itep.completed`, `synap.released`, "
                "`inspera.event.qti_export_ready`. `type` is a status or `event.<vendor's name>`."
            ),
            "parameters": {
                "vendor": {"enum": [v.value for v in Vendor], "description": "The vendor that sent it."},
                "type": {
                    "description": (
                        "The event type: a normalized status ("
                        + ", ".join(s.value for s in Status)
                        + ") or `event.<the vendor's own event name>` (may contain dots)."
                    ),
                    "examples": [Status.COMPLETED.value, "event.qti_export_ready"],
                },
            },
            "messages": {"resultEvent": {"$ref": "#/components/messages/resultEvent"}},
            "bindings": bindings,
        }
    }
    operations: dict[str, Any] = {
        "publishResultEvent": _send(
            "resultEvents",
            "resultEvent",
            "Published once its webhook is stored, persistent and confirmed; message_id = the event's id.",
        )
    }
    messages: dict[str, Any] = {
        "resultEvent": _message(
            "resultEvent",
            "Result event",
            f"A normalized exam event (schema resultbus.result-event/v{SCHEMA_VERSION}).",
            "ResultEvent",
            _RESULT_EXAMPLE,
        )
    }
    for name, key, title, summary, struct, example in _OPERATIONAL:
        channels[name] = {
            "address": key,
            "title": title,
            "description": f"Operational event; bind `{key.replace('{change}', '*')}` or `resultbus.#`.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": bindings,
        }
        if "{change}" in key:
            channels[name]["parameters"] = {
                "change": {"description": "The order's new status, or `conflict`."}
            }
        operations[f"publish{name[0].upper()}{name[1:]}"] = _send(name, name, summary)
        messages[name] = _message(name, title, summary, struct.__name__, example)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "resultbus results",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": _paragraphs(_DESCRIPTION.format(exchange=topology.results_exchange)),
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The RabbitMQ cluster of your resultbus installation; ask its operator.",
                "variables": {"host": {"default": "rabbitmq"}, "port": {"default": "5672"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
