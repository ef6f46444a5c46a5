"""What the checker reads and writes in PostgreSQL: claiming due endpoints, and recording each check.

Lock order, to stay clear of the admin API's deadlocks: the admin API locks a subscription, then its
endpoint; recording a failure does the same (the endpoint's active subscriptions first).
"""

from datetime import datetime

import msgspec

from common.db import DbConn

# One statement, so one short transaction that commits before any HTTP call: once it returns, the
# claimed endpoints are not due again for `interval`, and another checker's claim skips them
# (SKIP LOCKED while this one runs; its WHERE re-checked on the updated rows after it commits).
_CLAIM = """
WITH due AS (
    SELECT e.id FROM endpoints e
    WHERE e.next_check_at <= $1
      AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.endpoint_id = e.id AND s.status = 'active')
    ORDER BY e.next_check_at, e.id
    LIMIT $3
    FOR UPDATE OF e SKIP LOCKED
), claimed AS (
    UPDATE endpoints e SET next_check_at = $1 + make_interval(secs => $2)
    FROM due WHERE e.id = due.id
    RETURNING e.id, e.url
)
SELECT c.id, c.url,
       array(SELECT DISTINCT k.secret
             FROM subscriptions s JOIN subscription_secrets k ON k.subscription_id = s.id
             WHERE s.endpoint_id = c.id AND s.status = 'active'
               AND (k.expires_at IS NULL OR k.expires_at > $1)
             ORDER BY k.secret) AS secrets,
       -- Only gradebooks post to it: the check is theirs (one of them speaks for the endpoint).
       (SELECT s.destination::text FROM subscriptions s
        WHERE s.endpoint_id = c.id AND s.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM subscriptions w
                          WHERE w.endpoint_id = c.id AND w.status = 'active' AND w.destination_kind = 'webhook')
        ORDER BY s.created_at, s.id LIMIT 1) AS destination
FROM claimed c
"""

_ALIVE = """
UPDATE endpoints SET consecutive_failures = 0, failing_since = NULL, last_error = NULL, last_checked_at = $2
WHERE id = $1
"""

_LOCK_ACTIVE = """
SELECT id FROM subscriptions WHERE endpoint_id = $1 AND status = 'active' ORDER BY id FOR UPDATE
"""

_FAILED = """
UPDATE endpoints SET consecutive_failures = consecutive_failures + 1,
                     failing_since = coalesce(failing_since, $2),
                     last_error = $3, last_checked_at = $2
WHERE id = $1
RETURNING consecutive_failures, failing_since
"""

_UNSUBSCRIBE = """
UPDATE subscriptions SET status = 'unsubscribed', status_reason = $2, status_changed_at = $3, updated_at = $3
WHERE endpoint_id = $1 AND status = 'active'
RETURNING id::text
"""


class DueEndpoint(msgspec.Struct, frozen=True):
    id: int
    url: str  # normalized: the one URL every subscription on it shares
    secrets: list[str]  # every live secret of every active subscription on it
    destination: str | None = None  # a gradebook's configuration, when only gradebooks use it


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint's state after a failed check, and whom it unsubscribed."""

    failures: int
    failing_since: datetime
    reason: str | None = None
    unsubscribed: list[str] = []


async def claim_due(conn: DbConn, now: datetime, interval: float, limit: int) -> list[DueEndpoint]:
    rows = await conn.fetch(_CLAIM, now, interval, limit)
    return [DueEndpoint(row["id"], row["url"], list(row["secrets"]), row["destination"]) for row in rows]


async def record_alive(conn: DbConn, endpoint_id: int, now: datetime) -> None:
    await conn.execute(_ALIVE, endpoint_id, now)


async def record_failure(
    conn: DbConn, endpoint_id: int, now: datetime, error: str, threshold: int
) -> Failure:
    """Counts the failure; at `threshold` in a row, unsubscribes every active subscription on the
    endpoint with the reason. One transaction: the count and the unsubscriptions stand or fall together."""
    async with conn.transaction():
        await conn.fetch(_LOCK_ACTIVE, endpoint_id)
        row = await conn.fetchrow(_FAILED, endpoint_id, now, error)
        assert row is not None, "endpoints are never deleted"
        failures: int = row["consecutive_failures"]
        since: datetime = row["failing_since"]
        if failures < threshold:
            return Failure(failures=failures, failing_since=since)
        reason = unsubscribe_reason(failures, since, error)
        ids = [r[0] for r in await conn.fetch(_UNSUBSCRIBE, endpoint_id, reason, now)]
        return Failure(failures=failures, failing_since=since, reason=reason, unsubscribed=ids)


def unsubscribe_reason(failures: int, since: datetime, error: str) -> str:
    return (
        f"endpoint failed {failures} verification calls in a row since {since.isoformat()}; "
        f"last error: {error}"
    )
