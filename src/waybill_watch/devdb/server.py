"""Start and stop one local PostgreSQL server process, and the connection helpers around it.

A data dir (``.run/postgres`` for ``up``, else a temporary dir) holds:

- ``pgdata/``: the cluster. ``initdb`` runs once; a kept data dir is reused on restart.
  PostgreSQL's own ``postmaster.pid`` in it is the pid file ``down`` reads.
- ``postgres.log``: the server's output (``postgres.log.prev`` keeps the previous run's).
- ``.s.PGSQL.<port>``: the unix socket (``psql -h <data dir>``), not in /var/run, which
  needs root. It is left out when the path is too long for a socket (TCP still works).

Port, listen address, socket dir and durability go on the command line at every start, so
a kept cluster can come back on another port and its ``postgresql.conf`` stays initdb's.
The server runs in its own session: Ctrl-C in the terminal that started it does not reach it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from waybill_watch.devdb import (
    BINDIR_ENV,
    DATABASE,
    HOST,
    INSTALL_HINT,
    SUPERUSER,
    DatabaseError,
)
from waybill_watch.localproc import free_port, port_is_free, tail, tail_file

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0
INITDB_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 5
RETRY_DELAY_S = 0.05

PGDATA_DIR = "pgdata"
LOG_FILE = "postgres.log"
POSTMASTER_PID = "postmaster.pid"
MAINTENANCE_DB = "postgres"

SERVICE_USERS = ("postgres", "waybill-watch-pg")
"""Who runs the server when we are root: Debian's user if present, else ours (created)."""

NON_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
"""Test-only settings: a crash of the machine may corrupt the cluster, a test run doesn't care."""

SOCKET_PATH_MAX = 107
"""``sun_path`` holds 108 bytes including the NUL."""

_RETRYABLE = (
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "the database system is in recovery mode",
    "too many clients",
)
"""Server refusals that go away by waiting; any other FATAL (no such database or role, bad
password) will not, so readiness waits fail on them at once."""

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)")


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1, run from the installed server binaries.

    ``port=None`` picks a free port. ``data_dir=None`` uses a temporary directory that
    ``stop()`` deletes; a given ``data_dir`` is kept and reused by the next start (data
    survives). ``durable=False`` turns fsync off: fine for tests, never for ``up``.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        durable: bool = True,
    ) -> None:
        self._requested_port = port
        self._temporary = data_dir is None
        self.data_dir: Path | None = None if data_dir is None else Path(data_dir).resolve()
        self.durable = durable
        self.port: int | None = None
        self.version: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/waybill_watch`` once started."""
        return server_url(self._started_port(), DATABASE)

    @property
    def admin_url(self) -> str:
        """The URL of the ``postgres`` maintenance database (always exists)."""
        return server_url(self._started_port(), MAINTENANCE_DB)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while this object manages it."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the postmaster this object spawned is still alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """``<data_dir>/postgres.log``: the server's stdout and stderr."""
        if self.data_dir is None:
            raise DatabaseError("PostgreSQL server has no data dir yet")
        return self.data_dir / LOG_FILE

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the server, create database ``waybill_watch`` if missing, return its URL."""
        if self.running:
            return self.url
        self.launch()
        try:
            wait_until_ready(self.admin_url, timeout, check=self.check_alive)
            ensure_database(self.admin_url, DATABASE)
        except DatabaseError as exc:
            message = self.failure_message(exc)
            self.stop()
            raise DatabaseError(message) from None
        except BaseException:
            self.stop()
            raise
        return self.url

    def launch(self) -> None:
        """Create the cluster (once) and spawn the postmaster, without waiting for it."""
        if self.running:
            return
        bindir = find_bindir()
        self.version = server_version(bindir)
        account = _service_account()
        try:
            data_dir = self._prepare_data_dir(account)
            self.port = _usable_port(self._requested_port, previous=self.port)
            _init_cluster(bindir, self.version, data_dir / PGDATA_DIR, account, self.durable)
            self._proc = self._spawn(bindir, data_dir, account)
            atexit.register(self.stop)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (sessions aborted, checkpoint written), SIGKILL after 30 s.

        Safe to call twice; deletes a temporary data dir.
        """
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate_child(proc)
        if self._temporary and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def detach(self) -> int:
        """Leave the running server alone from now on (no stop at exit); return its pid."""
        if self._proc is None:
            raise DatabaseError("PostgreSQL server not started")
        if self._temporary:
            raise DatabaseError("a server with a temporary data dir cannot be detached")
        atexit.unregister(self.stop)
        pid, self._proc = self._proc.pid, None
        return pid

    def check_alive(self) -> None:
        """Raise :class:`DatabaseError` if the spawned postmaster has exited (readiness waits)."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise DatabaseError(f"postgres exited with code {proc.returncode} during start")

    def failure_message(self, exc: DatabaseError) -> str:
        """``exc`` plus the tail of the server log, where PostgreSQL says what went wrong."""
        if self.data_dir is None:
            return f"local PostgreSQL failed to start: {exc}"
        where = "" if self._temporary else f" (full log: {self.log_path})"
        return (
            f"local PostgreSQL {self.version} failed to start: {exc}\n"
            f"last lines of the server log{where}:\n{tail_file(self.log_path)}"
        )

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _started_port(self) -> int:
        if self.port is None:
            raise DatabaseError("PostgreSQL server not started")
        return self.port

    def _prepare_data_dir(self, account: _Account | None) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="waybill-watch-pg-")).resolve()
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        other = running_pid(data_dir)
        if other is not None:
            raise DatabaseError(
                f"a PostgreSQL server (pid {other}) already runs on data dir {data_dir}; "
                f"stop it first (`python -m waybill_watch.devdb down --data-dir {data_dir}`)"
            )
        if account is not None:
            _check_reachable(data_dir, account)
            os.chown(data_dir, account.uid, account.gid)  # the socket and lock file go here
            pgdata = data_dir / PGDATA_DIR
            if pgdata.exists() and pgdata.stat().st_uid != account.uid:
                raise DatabaseError(
                    f"{pgdata} belongs to uid {pgdata.stat().st_uid}, but the server runs as "
                    f"{account.name} (uid {account.uid}; PostgreSQL refuses root): "
                    f"`chown -R {account.name} {pgdata}` or delete it"
                )
        return data_dir

    def _spawn(
        self, bindir: Path, data_dir: Path, account: _Account | None
    ) -> subprocess.Popen[bytes]:
        log_path = self.log_path
        if log_path.exists():
            log_path.replace(log_path.with_name(LOG_FILE + ".prev"))
        port = self._started_port()
        cmd = [
            str(bindir / "postgres"),
            "-D",
            str(data_dir / PGDATA_DIR),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"unix_socket_directories={_socket_dir(data_dir, port)}",
            "-c",
            "logging_collector=off",
        ]
        if not self.durable:
            for setting in NON_DURABLE:
                cmd += ["-c", setting]
        with log_path.open("ab") as log:
            return subprocess.Popen(
                cmd,
                cwd=data_dir,
                env=_server_env(account, data_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=None if account is None else account.uid,
                group=None if account is None else account.gid,
                extra_groups=None if account is None else list(account.groups),
            )


# --- finding the server ----------------------------------------------------------------


def find_bindir() -> Path:
    """The server's bin dir (with ``initdb`` and ``postgres``).

    ``$WAYBILL_WATCH_PG_BINDIR`` if set (and then only it), else ``pg_config --bindir``,
    else the newest ``/usr/lib/postgresql/*/bin`` (Debian installs no server on PATH),
    else the dir of ``postgres`` on PATH.
    """
    configured = os.environ.get(BINDIR_ENV, "").strip()
    if configured:
        missing = _missing_programs(Path(configured))
        if missing:
            raise DatabaseError(
                f"{BINDIR_ENV}={configured} has no {' or '.join(missing)}: point it at a "
                f"PostgreSQL server's bin dir, or unset it and install the server "
                f"(`{INSTALL_HINT}`)"
            )
        return Path(configured)
    for candidate in _candidate_bindirs():
        if not _missing_programs(candidate):
            return candidate
    raise DatabaseError(
        "PostgreSQL server not found (no initdb and postgres in `pg_config --bindir`, "
        f"/usr/lib/postgresql/*/bin or PATH): install it with `{INSTALL_HINT}` "
        f"or set {BINDIR_ENV}"
    )


def server_version(bindir: Path) -> str:
    """``"15.18"`` from ``postgres --version`` (allowed as root, unlike starting it)."""
    postgres = bindir / "postgres"
    try:
        done = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"could not run `{postgres} --version`: {exc}") from exc
    match = _VERSION_RE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise DatabaseError(
            f"`{postgres} --version` failed or was not understood: "
            f"{tail(done.stdout + done.stderr, 3)}"
        )
    return match.group(1)


def _major(version: str) -> str:
    """The ``PG_VERSION`` a cluster of ``version`` has: ``15.18`` → ``15``, ``9.6.24`` → ``9.6``."""
    parts = version.split(".")
    return ".".join(parts[:2]) if int(parts[0]) < 10 else parts[0]


def _missing_programs(bindir: Path) -> list[str]:
    return [
        name
        for name in ("initdb", "postgres")
        if not (bindir / name).is_file() or not os.access(bindir / name, os.X_OK)
    ]


def _candidate_bindirs() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                yield Path(done.stdout.strip())
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(versions, key=lambda p: _version_key(p.parent.name), reverse=True)
    on_path = shutil.which("postgres")
    if on_path is not None:
        yield Path(on_path).parent


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


# --- running as an unprivileged user when we are root ------------------------------------


@dataclass(frozen=True)
class _Account:
    """The unprivileged user the server runs as when this process is root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _service_account() -> _Account | None:
    """None unless root; then ``postgres``, else ``waybill-watch-pg`` (created if missing)."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            if entry.pw_uid != 0:
                return _account(entry)
    name = SERVICE_USERS[-1]
    _create_system_user(name)
    return _account(pwd.getpwnam(name))


def _account(entry: pwd.struct_passwd) -> _Account:
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def _create_system_user(name: str) -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise DatabaseError(
            f"running as root, but PostgreSQL refuses root and there is no `postgres` user "
            f"nor useradd to create `{name}`: `{INSTALL_HINT}` creates `postgres`"
        )
    cmd = [useradd, "--system", "--user-group", "--no-create-home"]
    cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode not in (0, 9):  # 9: created meanwhile by a concurrent start
        raise DatabaseError(
            f"could not create system user {name} for PostgreSQL (PostgreSQL refuses root): "
            f"{tail(done.stderr, 3)}"
        )


def _check_reachable(path: Path, account: _Account) -> None:
    """Fail with a remedy when ``account`` cannot reach ``path``, instead of initdb's bare
    'Permission denied' later (e.g. pytest's ``/tmp/pytest-of-root`` is mode 0700)."""
    for parent in reversed(path.parents):
        info = parent.stat()
        if not _may_search(info, account):
            raise DatabaseError(
                f"the server runs as {account.name} (PostgreSQL refuses root), which cannot "
                f"reach {path}: {parent} has mode {stat.filemode(info.st_mode)} (owner uid "
                f"{info.st_uid}); use a data dir under {tempfile.gettempdir()} or "
                f"`chmod o+x {parent}`"
            )


def _may_search(info: os.stat_result, account: _Account) -> bool:
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in account.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _server_env(account: _Account | None, home: Path) -> dict[str, str]:
    """Our environment minus ``PG*`` (``PGDATA``, ``PGPORT`` … must not redirect the
    server), in the C locale (initdb rejects locales the machine does not have)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    if account is not None:
        env.update(HOME=str(home), USER=account.name, LOGNAME=account.name)
    return env


# --- cluster and process ----------------------------------------------------------------


def _init_cluster(
    bindir: Path, version: str, pgdata: Path, account: _Account | None, durable: bool
) -> None:
    """``initdb`` a new cluster; reuse an existing one if its major version matches."""
    try:
        existing = (pgdata / "PG_VERSION").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise DatabaseError(f"cannot read the cluster in {pgdata}: {exc}") from exc
    if existing is not None:
        if existing != _major(version):
            raise DatabaseError(
                f"{pgdata} holds a PostgreSQL {existing} cluster but the server in {bindir} "
                f"is {version}: set {BINDIR_ENV} to a PostgreSQL {existing} bin dir, or delete "
                f"{pgdata}"
            )
        return
    cmd = [str(bindir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust"]
    cmd += ["--encoding=UTF8", "--no-locale"]
    if not durable:
        cmd.append("--no-sync")
    try:
        done = subprocess.run(
            cmd,
            cwd=pgdata.parent,
            env=_server_env(account, pgdata.parent),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INITDB_TIMEOUT_S,
            check=False,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else list(account.groups),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(f"initdb failed for {pgdata}: {exc}") from exc
    if done.returncode != 0:
        raise DatabaseError(
            f"initdb failed for {pgdata} (exit {done.returncode}):\n"
            f"{tail(done.stdout + done.stderr)}"
        )


def _socket_dir(data_dir: Path, port: int) -> str:
    """The data dir, or ``''`` (no unix socket) when its path cannot hold one."""
    path = str(data_dir)
    too_long = len(f"{path}/.s.PGSQL.{port}".encode()) > SOCKET_PATH_MAX
    needs_quoting = any(char in path for char in ',"') or any(char.isspace() for char in path)
    return "" if too_long or needs_quoting else path


def _terminate_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)  # fast shutdown; the postmaster stops its children
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


# --- pid file: how a later process finds a detached server --------------------------------


def _postmaster_lines(data_dir: Path) -> list[str]:
    try:
        return (data_dir / PGDATA_DIR / POSTMASTER_PID).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def running_pid(data_dir: Path) -> int | None:
    """The pid of the postmaster running on ``data_dir``, per its ``postmaster.pid``."""
    lines = _postmaster_lines(data_dir)
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    if not pid_alive(pid) or not _is_postmaster_for(pid, data_dir / PGDATA_DIR):
        return None
    return pid


def running_port(data_dir: Path) -> int | None:
    """The port in ``postmaster.pid`` (4th line): where the running server listens."""
    lines = _postmaster_lines(data_dir)
    try:
        return int(lines[3])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies count as dead; our own exited children are reaped)."""
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return proc_stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_postmaster_for(pid: int, pgdata: Path) -> bool:
    """Guard against pid reuse: the process must be ``postgres -D <pgdata>`` (the postmaster
    keeps its command line; only its children retitle themselves)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    text = [arg.decode(errors="replace") for arg in args]
    return (
        bool(text)
        and Path(text[0]).name in {"postgres", "postmaster"}
        and str(pgdata.resolve()) in text
    )


def stop_pid(pid: int, grace: float = STOP_GRACE_S) -> bool:
    """Fast-shutdown a server we did not spawn (found by pid file). True if it was killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


# --- ports --------------------------------------------------------------------------------


def _usable_port(requested: int | None, previous: int | None = None) -> int:
    """``requested`` if free (else an error); else the previous run's port if still free,
    so a restarted object keeps its URL; else any free port."""
    if requested is not None:
        if not port_is_free(requested):
            raise DatabaseError(
                f"port {requested} on {HOST} is already in use (another PostgreSQL? "
                f"pick another port)"
            )
        return requested
    if previous is not None and port_is_free(previous):
        return previous
    return free_port()


# --- URLs and connections -------------------------------------------------------------------


def server_url(port: int, database: str = DATABASE) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/DATABASE`` (trust auth: no password)."""
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/{quote(database, safe='')}"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead (URL or ``key=value`` conninfo)."""
    if "://" in url:
        return urlunsplit(urlsplit(url)._replace(path="/" + quote(name, safe="")))
    return make_conninfo(url, dbname=name)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for error messages."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def wait_until_ready(url: str, timeout: float, *, check: Callable[[], None] | None = None) -> None:
    """Block until a connection to ``url`` runs ``SELECT 1``.

    Retries while nothing listens or the server is still starting; fails at once on
    refusals waiting will not fix (no such database or role, bad password, bad URL).
    ``check`` runs between attempts and may raise to abort (e.g. the process died).
    Raises :class:`DatabaseError` after ``timeout`` seconds.
    """
    shown = redact_url(url)
    deadline = time.monotonic() + timeout
    last_error = "no attempt finished"
    while True:
        if check is not None:
            check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseError(
                f"PostgreSQL at {shown} not ready after {timeout:.0f} s (last error: {last_error})"
            )
        try:
            connect_timeout = max(2, min(CONNECT_TIMEOUT_S, int(remaining) + 1))
            with psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last_error = _one_line(exc)
            if "FATAL:" in last_error and not any(text in last_error for text in _RETRYABLE):
                raise DatabaseError(f"PostgreSQL at {shown} refuses: {last_error}") from None
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to {shown}: {_one_line(exc)}") from None
        time.sleep(max(0.0, min(RETRY_DELAY_S, deadline - time.monotonic())))


def create_database(url: str, name: str) -> str:
    """Create empty database ``name`` on the server of ``url``; return its URL.

    Why: tests get a database of their own on a shared server (isolation without a
    server per test). ``url`` needs the CREATEDB privilege.
    """
    with _admin_connection(url, f"creating database {name}") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(url, name)


def ensure_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url`` unless it exists; return its URL."""
    with _admin_connection(url, f"creating database {name}") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # a concurrent start
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` (if it exists) on the server of ``url``, whose own database
    must be another one; sessions still connected to it are terminated (PostgreSQL 13+)."""
    with _admin_connection(url, f"dropping database {name}") as conn:
        statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if conn.info.server_version >= 130000:
            statement = sql.SQL("{} WITH (FORCE)").format(statement)
        conn.execute(statement)


@contextlib.contextmanager
def _admin_connection(url: str, action: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection (CREATE/DROP DATABASE cannot run in a transaction);
    driver errors become one-line :class:`DatabaseError` s without the password."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            yield conn
    except psycopg.Error as exc:
        raise DatabaseError(f"{action} on {redact_url(url)} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
