"""Redelivered raw messages being processed right now, kept durably: a message that is still marked
when it comes back again was in hand each time a router died, and is set aside after a few."""

from common.db import DbConn

# A mark older than an hour is left over (the message was deferred or the database failed before it
# could be cleared), not a router dying over and over, which takes seconds: it counts from one again.
_MARK = """
INSERT INTO router_suspects (message_key) VALUES ($1)
ON CONFLICT (message_key) DO UPDATE
SET started = CASE WHEN router_suspects.last_at < now() - interval '1 hour' THEN 1
                   ELSE router_suspects.started + 1 END,
    first_at = CASE WHEN router_suspects.last_at < now() - interval '1 hour' THEN now()
                    ELSE router_suspects.first_at END,
    last_at = now()
RETURNING started
"""


async def mark(conn: DbConn, key: str) -> int:
    """How many times processing this message has started, this one included."""
    return int(await conn.fetchval(_MARK, key))


async def clear(conn: DbConn, key: str) -> None:
    await conn.execute("DELETE FROM router_suspects WHERE message_key = $1", key)
