"""The case service's schema: ``cases/migrations/NNNN_name.sql`` applied by the shared runner
(``waybill_watch.pgmigrate``) with the case service's version table and lock."""

from __future__ import annotations

from waybill_watch import pgmigrate

PACKAGE = "waybill_watch.cases.migrations"
TABLE = "schema_migrations"
#: Any fixed number: the lock that serialises the case service's migrations across processes.
LOCK = 0x77617962

Migration = pgmigrate.Migration


def migrations() -> list[pgmigrate.Migration]:
    """The case service's migrations in version order."""
    return pgmigrate.migrations(PACKAGE)


async def migrate(url: str) -> list[int]:
    """Apply pending case-service migrations; returns the versions applied now."""
    return await pgmigrate.migrate(url, package=PACKAGE, table=TABLE, lock=LOCK)
