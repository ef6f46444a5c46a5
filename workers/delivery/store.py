"""What the delivery workers read and write in PostgreSQL: matching subscriptions, deliveries and
their attempts."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from common.db import DbConn

# An empty filter matches everything; an event type filter may end in `*`.
_MATCH = """
SELECT s.id::text
FROM subscriptions s
WHERE s.status = 'active'
  AND (cardinality(s.vendors) = 0 OR $1 = ANY (s.vendors))
  AND (cardinality(s.sources) = 0 OR $2 = ANY (s.sources))
  AND (cardinality(s.event_types) = 0 OR EXISTS (
        SELECT 1 FROM unnest(s.event_types) AS f(t)
        WHERE f.t = $3 OR (right(f.t, 1) = '*' AND starts_with($3, left(f.t, -1)))))
"""

# The endpoint's rate limit is the strictest of its active subscriptions' (see rate_limit.py).
_TARGET = """
SELECT s.url, s.status, e.url AS endpoint,
       array(SELECT secret FROM subscription_secrets k
             WHERE k.subscription_id = s.id AND (k.expires_at IS NULL OR k.expires_at > now())
             ORDER BY k.created_at DESC, k.id DESC) AS secrets,
       e.id AS endpoint_id, rl.rate_limit, rl.rate_period
FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
LEFT JOIN LATERAL (
    SELECT o.rate_limit, CASE o.rate_limit_per WHEN 'minute' THEN 60.0 ELSE 1.0 END AS rate_period
    FROM subscriptions o
    WHERE o.endpoint_id = s.endpoint_id AND o.status = 'active' AND o.rate_limit IS NOT NULL
    ORDER BY o.rate_limit / CASE o.rate_limit_per WHEN 'minute' THEN 60.0 ELSE 1.0 END
    LIMIT 1
) rl ON true
WHERE s.id = $1::uuid
"""

# What an attempt needs to know, in one round trip: the delivery's state and, joined beside it, its
# subscription's target (all NULL when the subscription is gone). No row: the delivery is gone.
_TARGET_AND_STATE = f"""
SELECT d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.updated_at,
       -- A `rate_limited` note carries the number of the attempt it held back: not an outcome.
       (SELECT a.outcome FROM delivery_attempts a
        WHERE a.delivery_id = d.id AND a.outcome <> 'rate_limited'
        ORDER BY a.attempt DESC, a.id DESC LIMIT 1) AS last_outcome,
       t.url, t.status AS subscription_status, t.endpoint, t.secrets, t.endpoint_id, t.rate_limit,
       t.rate_period
FROM deliveries d
LEFT JOIN LATERAL ({_TARGET.replace("$1::uuid", "d.subscription_id")}) t ON true
WHERE d.id = $1::uuid
"""

_RECORD_ATTEMPT = """
WITH d AS (
    UPDATE deliveries SET attempts = attempts + 1, status = $2, last_status = $4, last_error = $6,
                          next_attempt_at = $8, updated_at = now()
    WHERE id = $1::uuid
    RETURNING id, attempts
)
INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error,
                               outcome, next_attempt_at)
SELECT d.id, d.attempts, $3, $4, $5, $6, $7, $8 FROM d
RETURNING attempt
"""

_CANCEL = "UPDATE deliveries SET status = 'cancelled', updated_at = now() WHERE id = $1::uuid AND status = 'pending'"

_DISABLE = """
UPDATE subscriptions SET status = 'disabled', status_reason = $2, status_changed_at = now(), updated_at = now()
WHERE id = $1::uuid AND status = 'active'
RETURNING id
"""


class Target(msgspec.Struct, frozen=True):
    """Where and how to send one delivery, as the subscription stands now."""

    url: str
    status: str
    endpoint: str  # normalized: the key of the per-endpoint limit
    secrets: list[str]
    endpoint_id: int = 0
    rate_limit: int | None = None  # deliveries per `rate_period` seconds, across every worker
    rate_period: float | None = None


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    outcome: str  # succeeded | retry | failed | gone
    next_attempt_at: datetime | None = None

    @property
    def delivery_status(self) -> str:
        return {"succeeded": "succeeded", "retry": "pending"}.get(self.outcome, "failed")


class NewDelivery(msgspec.Struct, frozen=True):
    delivery_id: str
    subscription_id: str
    target: Target | None  # None: its subscription is gone (only a recovered delivery)


async def create_deliveries(
    conn: DbConn, vendor: str, source: str, event_type: str, event_id: str, *, recovering: bool
) -> list[NewDelivery]:
    """Matches the event to the active subscriptions and stores a delivery for each (one round trip):
    the deliveries that need work now, each with its target as it stands. They are the ones created
    here and, when `recovering` (the event message was delivered before, so an earlier fan-out may
    have stopped before it finished), the pending ones never attempted and the ones whose only
    attempt, made by that fan-out, may lack what follows it. A delivery attempted more often has its
    next task in a delay tier: never a second one."""
    rows = await conn.fetch(_CREATE_DELIVERIES, vendor, source, event_type, event_id, recovering)
    return [NewDelivery(row["delivery_id"], row["subscription_id"], _target_of(row)) for row in rows]


class DeliveryState(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # pending | succeeded | failed | cancelled
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_outcome: str | None  # of the latest attempt: succeeded | retry | failed | gone
    updated_at: datetime


async def record_attempt(conn: DbConn, delivery_id: str, attempt: Attempt) -> int:
    """Stores the attempt and the delivery's new state; returns the attempt's number."""
    number = await conn.fetchval(
        _RECORD_ATTEMPT,
        delivery_id,
        attempt.delivery_status,
        attempt.attempted_at,
        attempt.status_code,
        attempt.latency_ms,
        attempt.error,
        attempt.outcome,
        attempt.next_attempt_at,
    )
    return int(number or 0)


async def cancel(conn: DbConn, delivery_id: str) -> None:
    await conn.execute(_CANCEL, delivery_id)


async def disable_subscription(conn: DbConn, subscription_id: str, reason: str) -> bool:
    """True if this call disabled it (it was active)."""
    return await conn.fetchval(_DISABLE, subscription_id, reason) is not None


# Matching, storing the deliveries, and the targets of the matches, in one statement: the fan-out
# makes the first attempts itself. Redelivered events find their deliveries already there (the
# inserted rows are not visible to the second half of `work`: one snapshot).
_CREATE_DELIVERIES = f"""
WITH m AS ({_MATCH}), inserted AS (
    INSERT INTO deliveries (id, subscription_id, event_id, event_type)
    SELECT gen_random_uuid(), m.id::uuid, $4::uuid, $3 FROM m
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    RETURNING id, subscription_id
), work AS (
    SELECT id, subscription_id FROM inserted
    UNION ALL
    -- Whatever its subscription is now (paused, disabled by a 410 just recorded): the task or
    -- guard handed out for it follows up, or cancels.
    SELECT d.id, d.subscription_id FROM deliveries d
    WHERE $5 AND d.event_id = $4::uuid
      AND ((d.status = 'pending' AND d.attempts = 0)
           OR (d.status IN ('pending', 'failed') AND d.attempts = 1))
      AND d.id NOT IN (SELECT id FROM inserted)
)
SELECT w.id::text AS delivery_id, w.subscription_id::text AS subscription_id, t.url,
       t.status AS subscription_status, t.endpoint, t.secrets, t.endpoint_id, t.rate_limit, t.rate_period
FROM work w LEFT JOIN LATERAL ({_TARGET.replace("$1::uuid", "w.subscription_id")}) t ON true
"""

# The same read for many deliveries at once (batch.py); each row names its delivery.
_TARGETS_AND_STATES = _TARGET_AND_STATE.replace(
    "SELECT d.status,", "SELECT d.id::text AS delivery_id, d.status,", 1
).replace("WHERE d.id = $1::uuid", "WHERE d.id = ANY ($1::uuid[])")

# Many attempts recorded in one statement and one commit: each delivery's update and its attempt row,
# all or none. A delivery appears at most once per call (batch.py keys groups by delivery).
_RECORD_ATTEMPTS = """
WITH a AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::integer[],
                         $5::double precision[], $6::text[], $7::text[], $8::timestamptz[])
        AS a(id, status, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at)
), d AS (
    UPDATE deliveries SET attempts = deliveries.attempts + 1, status = a.status,
                          last_status = a.status_code, last_error = a.error,
                          next_attempt_at = a.next_attempt_at, updated_at = now()
    FROM a WHERE deliveries.id = a.id
    RETURNING deliveries.id, deliveries.attempts, a.attempted_at, a.status_code, a.latency_ms, a.error,
              a.outcome, a.next_attempt_at
)
INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error,
                               outcome, next_attempt_at)
SELECT id, attempts, attempted_at, status_code, latency_ms, error, outcome, next_attempt_at FROM d
RETURNING delivery_id::text, attempt
"""


def _target_of(row: asyncpg.Record) -> Target | None:
    if row["url"] is None:
        return None
    return Target(
        row["url"],
        row["subscription_status"],
        row["endpoint"],
        list(row["secrets"]),
        row["endpoint_id"],
        row["rate_limit"],
        None if row["rate_period"] is None else float(row["rate_period"]),
    )


def _state_of(row: asyncpg.Record) -> DeliveryState:
    return DeliveryState(
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_outcome=row["last_outcome"],
        updated_at=row["updated_at"],
    )


async def targets_and_states(
    conn: DbConn, delivery_ids: Sequence[str]
) -> list[tuple[Target | None, DeliveryState | None]]:
    """The target (its subscription as it stands) and the state of each delivery, in order, in one
    query ((None, None): no such delivery)."""
    rows = await conn.fetch(_TARGETS_AND_STATES, list(delivery_ids))
    found = {row["delivery_id"]: (_target_of(row), _state_of(row)) for row in rows}
    return [found.get(str(uuid.UUID(d)), (None, None)) for d in delivery_ids]


async def record_attempts(conn: DbConn, attempts: Sequence[tuple[str, Attempt]]) -> list[int]:
    """`record_attempt` for each (delivery id, attempt), in order, in one statement; no two of one
    delivery. 0 for a delivery that is gone."""
    rows = await conn.fetch(
        _RECORD_ATTEMPTS,
        [d for d, _ in attempts],
        [a.delivery_status for _, a in attempts],
        [a.attempted_at for _, a in attempts],
        [a.status_code for _, a in attempts],
        [a.latency_ms for _, a in attempts],
        [a.error for _, a in attempts],
        [a.outcome for _, a in attempts],
        [a.next_attempt_at for _, a in attempts],
    )
    numbers = {row["delivery_id"]: int(row["attempt"]) for row in rows}
    return [numbers.get(str(uuid.UUID(d)), 0) for d, _ in attempts]
