"""Versioned schema migrations: plain SQL files, applied in order, each exactly once.

A service's ``migrations/NNNN_name.sql`` files are applied in number order inside one
transaction each, recorded in its version table. Its advisory lock makes concurrent starts
(two processes of one service) wait for each other instead of racing. Each service (``cases``,
``notify``) passes its own package, version table and lock, so services sharing a database
never mix their histories. Services apply pending migrations on start; ``waybill-watch cases
migrate`` / ``notify migrate`` do it alone (a deploy step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str


def migrations(package: str) -> list[Migration]:
    """The migrations packaged in ``package``, in version order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(url: str, *, package: str, table: str, lock: int) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    if not _TABLE.match(table):
        raise ValueError(f"not a plain table name: {table!r}")
    # ``table`` is checked above and never comes from input: noqa S608 below.
    create = (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    select = f"SELECT version FROM {table}"  # noqa: S608
    insert = f"INSERT INTO {table} (version, name) VALUES (%s, %s)"  # noqa: S608
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
        try:
            await conn.execute(create.encode())
            cursor = await conn.execute(select.encode())
            done = {row[0] for row in await cursor.fetchall()}
            for migration in migrations(package):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(insert.encode(), (migration.version, migration.name))
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
    return applied_now
