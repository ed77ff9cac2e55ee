"""A local PostgreSQL server run from the installed server binaries (no Docker).

Why: the case store, ``make run`` and the integration tests need a real PostgreSQL, and
these machines have no Docker engine. Like ``waybill_watch.devbroker`` for Kafka, this
package starts one as a plain child process with its own data dir, on 127.0.0.1 only.

Security: the cluster is created with ``trust`` authentication (no passwords): any local
user who can reach 127.0.0.1 (or the unix socket in the data dir) may connect as the
superuser ``postgres``. That is acceptable for a throw-away development and test server on
loopback, and never for anything else; point ``WAYBILL_WATCH_DATABASE_URL`` at a real,
password-protected server there instead.

PostgreSQL refuses to run as root. When this process is root (CI), the server runs as the
``postgres`` system user (created by Debian's package), or as a dedicated
``waybill-watch-pg`` system user created on first use, and that user owns the data dir.
"""

from __future__ import annotations

HOST = "127.0.0.1"
"""The server listens on loopback only."""

DATABASE = "waybill_watch"
"""The application database ``LocalPostgres.start()`` creates if missing."""

SUPERUSER = "postgres"
"""The database superuser ``initdb`` creates (same name as in the ``postgres`` image)."""

BINDIR_ENV = "WAYBILL_WATCH_PG_BINDIR"
"""Environment variable naming the server's ``bin`` dir (with ``initdb`` and ``postgres``)."""

INSTALL_HINT = "apt-get install -y postgresql"
"""How to get the server on Debian/Ubuntu (named in every 'not found' error)."""


class DatabaseError(RuntimeError):
    """A local PostgreSQL could not be found, started or reached; the message says why.

    Not ``psycopg.DatabaseError`` (a driver error); this one is about the dev server.
    """


# The submodule reads the constants above, so it is imported after them.
from waybill_watch.devdb.server import (  # noqa: E402
    LocalPostgres,
    create_database,
    drop_database,
    ensure_database,
    find_bindir,
    redact_url,
    server_url,
    wait_until_ready,
    with_database,
)

__all__ = [
    "BINDIR_ENV",
    "DATABASE",
    "HOST",
    "INSTALL_HINT",
    "SUPERUSER",
    "DatabaseError",
    "LocalPostgres",
    "create_database",
    "drop_database",
    "ensure_database",
    "find_bindir",
    "redact_url",
    "server_url",
    "wait_until_ready",
    "with_database",
]
