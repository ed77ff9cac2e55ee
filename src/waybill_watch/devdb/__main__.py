"""``python -m waybill_watch.devdb up | down | status``: the dev PostgreSQL for ``make run``.

``up`` and ``status`` print the database URL alone on stdout, so that
``export WAYBILL_WATCH_DATABASE_URL=$(python -m waybill_watch.devdb up)`` works; what
happened goes to stderr. ``up`` keeps full durability (fsync on): the data dir holds the
developer's cases across restarts and crashes.

Exit codes: 0 success, 1 ``status`` found no server, 2 a :class:`DatabaseError`
(server not installed, initdb failure, server died or did not become ready).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from waybill_watch.devdb import DATABASE, DatabaseError
from waybill_watch.devdb.server import (
    LOG_FILE,
    MAINTENANCE_DB,
    LocalPostgres,
    ensure_database,
    port_is_free,
    running_pid,
    running_port,
    server_url,
    stop_pid,
    wait_until_ready,
)

DEFAULT_PORT = 5433
"""Not 5432, where a system PostgreSQL may already listen; ``up`` moves on if busy."""

DEFAULT_DATA_DIR = Path(".run/postgres")
ALIVE_CHECK_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one CLI command; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m waybill_watch.devdb",
        description="Local PostgreSQL server on 127.0.0.1 for development (trust auth).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start a background server (no-op if running)")
    up.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"default {DEFAULT_PORT}, or a free port if that one is busy",
    )
    _add_data_dir(up)
    up.set_defaults(func=_cmd_up)

    down = commands.add_parser("down", help="stop the background server")
    _add_data_dir(down)
    down.set_defaults(func=_cmd_down)

    status = commands.add_parser("status", help="is a server running? (exit 1 if not)")
    _add_data_dir(status)
    status.set_defaults(func=_cmd_status)
    return parser


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"cluster, log and socket (default {DEFAULT_DATA_DIR})",
    )


def _cmd_up(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        url = _running_url(data_dir, args.port)
        if url is not None:
            print(url)
            return 0
        started = time.monotonic()
        port = args.port
        if port is None and port_is_free(DEFAULT_PORT):
            port = DEFAULT_PORT
        server = LocalPostgres(data_dir, port)
        url = server.start()
        pid = server.detach()
    print(url)
    print(
        f"PostgreSQL {server.version} ready in {_since(started)} "
        f"(pid {pid}, data dir {data_dir}, log {data_dir / LOG_FILE})",
        file=sys.stderr,
    )
    return 0


def _running_url(data_dir: Path, wanted_port: int | None) -> str | None:
    """The URL of a healthy server already running on ``data_dir`` (None if none runs)."""
    pid = running_pid(data_dir)
    if pid is None:
        return None
    port = running_port(data_dir)
    if port is None:
        raise DatabaseError(f"PostgreSQL pid {pid} runs on {data_dir} but names no port yet")
    if wanted_port is not None and port != wanted_port:
        raise DatabaseError(
            f"a PostgreSQL server (pid {pid}) already runs on {data_dir} at port {port}, "
            f"not on the requested port {wanted_port}; run `down` first"
        )
    try:
        wait_until_ready(server_url(port, MAINTENANCE_DB), ALIVE_CHECK_S)
    except DatabaseError as exc:
        raise DatabaseError(
            f"PostgreSQL pid {pid} runs on {data_dir} but does not answer ({exc}); "
            f"see {data_dir / LOG_FILE} or run `down` first"
        ) from None
    url = ensure_database(server_url(port, MAINTENANCE_DB), DATABASE)
    print(f"already running (pid {pid}, data dir {data_dir})", file=sys.stderr)
    return url


def _cmd_down(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    if not data_dir.is_dir():
        print(f"not running (no data dir {data_dir})")
        return 0
    with _locked(data_dir):
        pid = running_pid(data_dir)
        if pid is None:
            print(f"not running (data dir {data_dir})")
            return 0
        started = time.monotonic()
        killed = stop_pid(pid)
    how = "killed after the grace period" if killed else "stopped"
    print(f"PostgreSQL pid {pid} {how} in {_since(started)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    pid = running_pid(data_dir)
    port = running_port(data_dir)
    if pid is None or port is None:
        print(f"not running (data dir {data_dir})", file=sys.stderr)
        return 1
    url = server_url(port, DATABASE)
    try:
        wait_until_ready(url, ALIVE_CHECK_S)
    except DatabaseError as exc:
        print(f"pid {pid} running but not answering: {exc}", file=sys.stderr)
        return 1
    print(url)
    print(f"running (pid {pid}, data dir {data_dir})", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise ``up``/``down`` on one data dir (two terminals, or make -j)."""
    with (data_dir / ".cli.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
