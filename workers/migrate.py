"""Applies the SQL migrations in workers/migrations/, in order, each once.

Safe to run from several containers at once: an advisory lock held for the transaction makes the
others wait, and they then find nothing left to apply.
"""

from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger()

_LOCK_KEY = "resultbus.migrate"


def migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("workers") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Applies what is missing; returns the names of the files it applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(name)
            log.info("migration applied", migration=name)
    return applied
