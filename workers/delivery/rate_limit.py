"""Per-endpoint rate limits, shared by every delivery worker.

A subscription may set `rate_limit` (N per second or per minute); subscriptions on one endpoint share
the strictest. The count lives in PostgreSQL, so it holds however many workers deliver: one row per
limited endpoint keeps the times of its last N sends (a sliding window log), read and rewritten under
the row's lock in one short transaction. A send is allowed when fewer than N fell within the last
window; otherwise the task goes back to the broker (a delay tier) until the window has room, spread
over one more window so that a backlog comes back a little at a time rather than all at once. The
task holds no prefetch slot and no worker waits meanwhile, and an endpoint without a limit costs
nothing here.
"""

import random
from datetime import datetime, timedelta

import asyncpg
import prometheus_client
import structlog

from common.db import DbConn
from workers.delivery.store import Target

log = structlog.get_logger("delivery")

THROTTLED = prometheus_client.Counter(
    "resultbus_delivery_rate_limited", "Delivery tasks held back in the broker by an endpoint's rate limit."
)

# Locks the endpoint's row, made by its first send, and reads the database's clock once the lock is
# held: one clock for every worker, and no send is recorded earlier than the one before it.
_LOCK = """
INSERT INTO endpoint_rate (endpoint_id) VALUES ($1)
ON CONFLICT (endpoint_id) DO UPDATE SET sent = endpoint_rate.sent
RETURNING sent, clock_timestamp() AS now
"""
_RECORD = "UPDATE endpoint_rate SET sent = $2 WHERE endpoint_id = $1"

# One note per held attempt in the attempt log, however often the task is held: `attempt` is the
# number of the attempt waiting to be made.
_NOTE = """
INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, latency_ms, error, outcome, next_attempt_at)
SELECT $1::uuid, $2, now(), 0, $3, 'rate_limited', $4
WHERE NOT EXISTS (SELECT 1 FROM delivery_attempts
                  WHERE delivery_id = $1::uuid AND attempt = $2 AND outcome = 'rate_limited')
"""


async def take(conn: DbConn, endpoint_id: int, limit: int, period: float) -> float | None:
    """Records a send to the endpoint now and returns None, or, if the window is full, returns how
    many seconds until it has room (and records nothing)."""
    async with conn.transaction():
        row = await conn.fetchrow(_LOCK, endpoint_id)
        assert row is not None
        now: datetime = row["now"]
        window = timedelta(seconds=period)
        recent = sorted(t for t in row["sent"] if t > now - window)
        if len(recent) >= limit:
            return max(0.0, float((recent[-limit] + window - now).total_seconds()))
        recent.append(now)
        await conn.execute(_RECORD, endpoint_id, recent[-limit:])
        return None


async def throttle(
    pool: asyncpg.Pool, target: Target, delivery_id: str, attempt: int, rng: random.Random
) -> float | None:
    """None: send now (counted in the window; a target without a limit always may). Otherwise the
    seconds the task is to wait in the broker; the attempt log says why (outcome `rate_limited`, once
    per attempt)."""
    limit, period = target.rate_limit, target.rate_period
    if limit is None or period is None:
        return None
    async with pool.acquire() as conn:
        room_in = await take(conn, target.endpoint_id, limit, period)
        if room_in is None:
            return None
        wait = room_in + rng.uniform(0.0, period)
        rate = f"{limit}/{'minute' if period >= 60 else 'second'}"
        note = f"held back by the endpoint's rate limit ({rate})"
        await conn.execute(
            _NOTE, delivery_id, attempt, note, datetime.now().astimezone() + timedelta(seconds=wait)
        )
    THROTTLED.inc()
    log.debug("delivery held by rate limit", limit=rate, wait=round(wait, 3))
    return wait
