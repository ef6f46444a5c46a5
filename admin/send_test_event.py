"""Sending one subscription a test event, from the admin process itself and at once: a ResultEvent
clearly marked as a test (source `resultbus-test`, vendor event `resultbus.test`, attribute
`resultbus_test`, an invented candidate at example.com), signed with the subscription's live secrets
exactly as a delivery is (subscribers/signing.py), POSTed through the hardened client with the same
address policy (subscribers/poster.py). The subscriber's answer, its latency and the error are the
result; nothing is stored and no delivery is made (a test is not a delivery: it is not retried and
does not count towards the endpoint's health or rate limit)."""

import time
import uuid
from datetime import UTC, datetime
from typing import Final

import structlog

from admin import wire
from admin.errors import Unprocessable
from common.db import DbConn
from schemas.event import Candidate, ExamRef, Result, ResultEvent, Status, encode_event
from schemas.vendor import Vendor
from subscribers.poster import Poster, subscriber_session
from subscribers.signing import InvalidSecret, secret_key, webhook_headers

log = structlog.get_logger("admin")

SOURCE: Final = "resultbus-test"
VENDOR_EVENT: Final = "resultbus.test"
# One POST, connect to last byte: the operator is waiting for the answer.
TIMEOUT: Final = 10.0
MAX_RESPONSE_BYTES: Final = 4096

_TARGET = """
SELECT s.url, s.status, s.vendors, s.destination_kind,
       array(SELECT k.secret FROM subscription_secrets k
             WHERE k.subscription_id = s.id AND (k.expires_at IS NULL OR k.expires_at > now())
             ORDER BY k.created_at DESC, k.id DESC) AS secrets
FROM subscriptions s WHERE s.id = $1::uuid
"""


def make_test_event(vendor: Vendor, status: Status, now: datetime) -> ResultEvent:
    event_id = str(uuid.uuid4())
    graded = status in (Status.COMPLETED, Status.RELEASED)
    return ResultEvent(
        id=event_id,
        type=status.value,
        vendor=vendor,
        source=SOURCE,
        webhook_id=str(uuid.uuid4()),
        vendor_event=VENDOR_EVENT,
        received_at=now,
        occurred_at=now,
        status=status,
        exam=ExamRef(key=f"TEST-{event_id[:8]}", test_id="TEST", title="resultbus test event"),
        candidate=Candidate(
            id="test-candidate",
            external_id="test-candidate",
            name="Test Candidate",
            email="test.candidate@example.com",
        ),
        result=Result(score=42.0, max_score=100.0, percent=42.0) if graded else None,
        attributes={"resultbus_test": True},
    )


async def send_test_event(
    conn: DbConn, subscription_id: str, request: wire.TestEvent, *, allow_private: bool
) -> wire.TestEventSent | None:
    """None: no such subscription."""
    target = await conn.fetchrow(_TARGET, subscription_id)
    if target is None:
        return None
    if target["destination_kind"] != "webhook":
        raise Unprocessable(
            f"a {target['destination_kind']} subscription gets no test event: it would write a grade for"
            " a made-up candidate. The dead-endpoint checker verifies it with a call that writes nothing"
            " (its endpoint check, on the subscription's page)"
        )
    vendors = [Vendor(v) for v in target["vendors"] if v in Vendor._value2member_map_]
    vendor = request.vendor or (vendors[0] if vendors else Vendor.ITEP)
    event = make_test_event(vendor, request.type, datetime.now(UTC))
    body = encode_event(event)
    refused: str | None = None
    try:
        keys = [secret_key(s) for s in target["secrets"]]
    except InvalidSecret as bad:  # only a hand-edited database gets here
        keys, refused = [], f"bad secret: {bad}"
    if not keys and refused is None:
        refused = "the subscription has no live signing secret"
    status: int | None
    error: str | None
    if refused is not None:
        status, latency, error = None, 0.0, refused
    else:
        # The delivery's own signature headers, for the delivery's own client and address policy.
        headers = webhook_headers(keys, event.id, int(time.time()), body)
        async with subscriber_session(allow_private=allow_private, limit=1, keep_alive=False) as session:
            poster = Poster(
                session, timeout=TIMEOUT, max_response_bytes=MAX_RESPONSE_BYTES, allow_private=allow_private
            )
            outcome = await poster.post(target["url"], body, headers)
        status, latency, error = outcome.status, outcome.latency_ms, outcome.error
    ok = status is not None and 200 <= status < 300
    log.info(
        "test event sent",
        subscription_id=subscription_id,
        webhook_id=event.id,
        status=status,
        latency_ms=latency,
        error=error,
    )
    return wire.TestEventSent(
        ok=ok,
        status=status,
        latency_ms=latency,
        error=error,
        url=target["url"],
        subscription_status=target["status"],
        webhook_id=event.id,
        event=event,
    )
