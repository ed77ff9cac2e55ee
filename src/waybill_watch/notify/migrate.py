"""The notifier's schema: its own SQL files, version table and lock, applied by the same
runner as the case service's (``pgmigrate``), so both can share one database."""

from __future__ import annotations

from waybill_watch import pgmigrate as runner

PACKAGE = "waybill_watch.notify.migrations"
TABLE = "notify_schema_migrations"
#: Any fixed number other than the case service's.
LOCK = 0x77626E74


def migrations() -> list[runner.Migration]:
    """The notifier's migrations in version order."""
    return runner.migrations(PACKAGE)


async def migrate(url: str) -> list[int]:
    """Apply pending notifier migrations; returns the versions applied now."""
    return await runner.migrate(url, package=PACKAGE, table=TABLE, lock=LOCK)
