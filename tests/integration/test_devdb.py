"""The dev PostgreSQL (``waybill_watch.devdb``) and the database fixtures work for real.

The launcher is what CI (root, no Docker) relies on, so these run it for real: a server
that answers psycopg, databases of their own per test, a kept data dir that survives a
restart, ``up``/``down`` across processes, and clear errors when the server is missing or
(as root) its data dir is out of the unprivileged server user's reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from waybill_watch.devdb import (
    BINDIR_ENV,
    DATABASE,
    INSTALL_HINT,
    DatabaseError,
    LocalPostgres,
    create_database,
    drop_database,
)
from waybill_watch.devdb.server import pid_alive

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 120


@pytest.fixture
def kept_dir() -> Iterator[Path]:
    """A data dir the server user can reach even as root (pytest's ``tmp_path`` lies under
    ``/tmp/pytest-of-root``, mode 0700, which the ``postgres`` user cannot enter)."""
    path = Path(tempfile.mkdtemp(prefix="waybill-watch-test-pg-"))
    path.chmod(0o755)
    try:
        yield path / "pg"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _server_uid_is_unprivileged(pid: int) -> None:
    """As root the server must run as another user (PostgreSQL refuses root); else as us."""
    owner = os.stat(f"/proc/{pid}").st_uid
    if os.geteuid() == 0:
        assert owner != 0
    else:
        assert owner == os.geteuid()


def test_round_trip_through_psycopg(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE parcels (waybill text PRIMARY KEY, scans int NOT NULL)")
        conn.execute("INSERT INTO parcels VALUES (%s, %s), (%s, %s)", ("WB1", 3, "WB2", 5))
        conn.commit()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT waybill, scans FROM parcels ORDER BY waybill").fetchall()
    assert rows == [("WB1", 3), ("WB2", 5)]


def test_database_url_is_a_fresh_database_of_its_own(
    database_url: str, postgres_server_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    with psycopg.connect(postgres_server_url) as conn:
        server_db = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and name[0].startswith("test_")
    assert server_db is not None and name != server_db
    assert tables == (0,)


def test_create_and_drop_database(postgres_server_url: str) -> None:
    url = create_database(postgres_server_url, "test_devdb_helpers")
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test_devdb_helpers",)
        with pytest.raises(DatabaseError, match="already exists"):
            create_database(postgres_server_url, "test_devdb_helpers")
        lingering = psycopg.connect(url)  # dropped anyway: the test must not leak databases
    finally:
        drop_database(postgres_server_url, "test_devdb_helpers")
    lingering.close()
    with psycopg.connect(postgres_server_url) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'test_devdb_helpers'"
        ).fetchone()
    assert found is None


def test_temporary_server_is_loopback_only_and_deleted_on_stop() -> None:
    with LocalPostgres(durable=False) as server:
        data_dir = server.data_dir
        assert data_dir is not None and (data_dir / "pgdata" / "PG_VERSION").is_file()
        assert server.url.startswith("postgresql://postgres@127.0.0.1:")
        assert server.url.endswith(f"/{DATABASE}")
        assert server.pid is not None
        _server_uid_is_unprivileged(server.pid)
        with psycopg.connect(server.url) as conn:
            settings = conn.execute(
                "SELECT current_setting('listen_addresses'), current_setting('fsync'),"
                " current_setting('unix_socket_directories')"
            ).fetchone()
        assert settings == ("127.0.0.1", "off", str(data_dir))
    assert server.data_dir is None
    assert not data_dir.exists()


def test_kept_data_dir_survives_stop_and_start(kept_dir: Path) -> None:
    first = LocalPostgres(kept_dir)
    url = first.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)  # durable by default
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('before restart')")
    finally:
        first.stop()
    assert (kept_dir / "pgdata" / "PG_VERSION").is_file()
    assert not (kept_dir / "pgdata" / "postmaster.pid").exists()

    with LocalPostgres(kept_dir) as second:
        assert second.pid is not None
        _server_uid_is_unprivileged(second.pid)
        with psycopg.connect(second.url) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("before restart",)]
    assert kept_dir.is_dir()


def test_cli_up_is_idempotent_and_down_stops_it(kept_dir: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "waybill_watch.devdb", *args, "--data-dir", str(kept_dir)],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    up = cli("up")
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()
    try:
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith(DATABASE)
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
        again = cli("up")
        assert (again.returncode, again.stdout.strip()) == (0, url)
        status = cli("status")
        assert (status.returncode, status.stdout.strip()) == (0, url)
        pid = int((kept_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not pid_alive(pid)  # a zombie until its new parent reaps it counts as gone
    assert cli("status").returncode == 1


def test_missing_server_binaries_name_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))
    server = LocalPostgres(durable=False)
    with pytest.raises(DatabaseError) as caught:
        server.start()
    message = str(caught.value)
    assert "\n" not in message
    assert f"{BINDIR_ENV}={tmp_path}" in message
    assert INSTALL_HINT in message
    assert server.data_dir is None  # nothing was created


def test_data_dir_the_server_user_cannot_reach_fails_clearly(tmp_path: Path) -> None:
    """As root the server runs as ``postgres``, which cannot enter pytest's private tmp
    dir: a one-line error with the remedy, before initdb. Not root: ``tmp_path`` works."""
    server = LocalPostgres(tmp_path / "pg", durable=False)
    if os.geteuid() == 0:
        with pytest.raises(DatabaseError, match="cannot reach") as caught:
            server.start()
        assert "\n" not in str(caught.value)
        assert not (tmp_path / "pg" / "pgdata").exists()
    else:
        with server, psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
