"""Redelivered raw messages being processed right now, kept durably: a message that is still marked
when it comes back again was in hand each time a router died, and is set aside after a few."""

from common.db import DbConn

_MARK = """
INSERT INTO router_suspects (message_key) VALUES ($1)
ON CONFLICT (message_key) DO UPDATE SET started = router_suspects.started + 1, last_at = now()
RETURNING started
"""


async def mark(conn: DbConn, key: str) -> int:
    """How many times processing this message has started, this one included."""
    return int(await conn.fetchval(_MARK, key))


async def clear(conn: DbConn, key: str) -> None:
    await conn.execute("DELETE FROM router_suspects WHERE message_key = $1", key)
