"""Versioned schema migrations: plain SQL files, applied in order, each exactly once.

``migrations/NNNN_name.sql`` files are applied in number order inside one transaction each,
recorded in ``schema_migrations``. An advisory lock makes concurrent starts (two case
service processes) wait for each other instead of racing. The service applies pending
migrations on start; ``waybill-watch cases migrate`` does it alone (for a deploy step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

#: Any fixed number: the lock that serialises migrations across processes.
_LOCK = 0x77617962
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations in version order."""
    found = []
    for entry in resources.files("waybill_watch.cases.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(url: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for migration in migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return applied_now
