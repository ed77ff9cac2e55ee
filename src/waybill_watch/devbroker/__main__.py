"""``python -m waybill_watch.devbroker fetch | up | down | status``.

Exit codes: 0 success, 1 ``status`` found no broker, 2 a :class:`BrokerError`
(missing java/mvn, Maven failure, broker died or did not become ready).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from waybill_watch.devbroker import KAFKA_VERSION, BrokerError
from waybill_watch.devbroker.broker import (
    LocalBroker,
    configured_port,
    remove_pid,
    running_pid,
    stop_pid,
)
from waybill_watch.devbroker.config import HOST
from waybill_watch.devbroker.jars import ensure_jars, is_complete, libs_dir
from waybill_watch.devbroker.ready import wait_until_ready

DEFAULT_PORT = 9092
DEFAULT_DATA_DIR = Path(".run/broker")
ALIVE_CHECK_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one CLI command; return the process exit code."""
    args = _parser().parse_args(argv)
    # aiokafka logs connection errors while a broker is still starting; the CLI reports
    # the outcome itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        code: int = args.func(args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m waybill_watch.devbroker",
        description=f"Local single-node Apache Kafka {KAFKA_VERSION} (KRaft) from Maven jars.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="download the broker jars into the cache")
    fetch.set_defaults(func=_cmd_fetch)

    up = commands.add_parser("up", help="start a background broker (no-op if running)")
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    _add_data_dir(up)
    up.add_argument("--heap", default="512m", help="JVM -Xmx (default 512m)")
    up.set_defaults(func=_cmd_up)

    down = commands.add_parser("down", help="stop the background broker")
    _add_data_dir(down)
    down.set_defaults(func=_cmd_down)

    status = commands.add_parser("status", help="is a broker running? (exit 1 if not)")
    _add_data_dir(status)
    status.set_defaults(func=_cmd_status)
    return parser


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"broker data, log and pid file (default {DEFAULT_DATA_DIR})",
    )


def _cmd_fetch(args: argparse.Namespace) -> int:
    libs = libs_dir()
    if is_complete(libs):
        print(f"Kafka {KAFKA_VERSION} jars already cached in {libs}")
        return 0
    started = time.monotonic()
    libs = ensure_jars()
    count = len(list(libs.glob("*.jar")))
    print(f"fetched {count} Kafka {KAFKA_VERSION} jars into {libs} in {_since(started)}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        if _report_running(data_dir, args.port):
            return 0
        remove_pid(data_dir)  # stale: its process is gone
        started = time.monotonic()
        broker = LocalBroker(port=args.port, data_dir=data_dir, heap=args.heap)
        bootstrap = broker.start()
        pid = broker.detach()
    print(
        f"Kafka {KAFKA_VERSION} ready at {bootstrap} in {_since(started)} "
        f"(pid {pid}, log {data_dir / 'broker.log'})"
    )
    return 0


def _report_running(data_dir: Path, wanted_port: int) -> bool:
    """True (after printing) if a healthy broker already runs on ``data_dir``."""
    pid = running_pid(data_dir)
    if pid is None:
        return False
    port = configured_port(data_dir)
    bootstrap = f"{HOST}:{port}"
    try:
        wait_until_ready(bootstrap, ALIVE_CHECK_S)
    except BrokerError as exc:
        raise BrokerError(
            f"broker pid {pid} runs on {data_dir} but does not answer at {bootstrap} "
            f"({exc}); see {data_dir / 'broker.log'} or run `down` first"
        ) from None
    if port != wanted_port:
        raise BrokerError(
            f"a broker (pid {pid}) already runs on {data_dir} at {bootstrap}, "
            f"not on the requested port {wanted_port}; run `down` first"
        )
    print(f"already running at {bootstrap} (pid {pid}, data dir {data_dir})")
    return True


def _cmd_down(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    if not data_dir.is_dir():
        print(f"not running (no data dir {data_dir})")
        return 0
    with _locked(data_dir):
        pid = running_pid(data_dir)
        if pid is None:
            remove_pid(data_dir)
            print(f"not running (data dir {data_dir})")
            return 0
        started = time.monotonic()
        killed = stop_pid(pid)
        remove_pid(data_dir, pid)
    how = "killed after the grace period" if killed else "stopped"
    print(f"broker pid {pid} {how} in {_since(started)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    libs = libs_dir()
    cached = "cached" if is_complete(libs) else "not fetched yet"
    print(f"Kafka {KAFKA_VERSION} jars: {libs} ({cached})")
    pid = running_pid(data_dir)
    if pid is None:
        print(f"broker: not running (data dir {data_dir})")
        return 1
    bootstrap = f"{HOST}:{configured_port(data_dir)}"
    try:
        wait_until_ready(bootstrap, ALIVE_CHECK_S)
    except BrokerError as exc:
        print(f"broker: pid {pid} running but not answering at {bootstrap}: {exc}")
        return 1
    print(f"broker: running at {bootstrap} (pid {pid}, data dir {data_dir})")
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
