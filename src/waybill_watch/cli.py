"""The ``waybill-watch`` command line (contract §2)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from waybill_watch import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(with_simulate_options="simulate" in argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


def _parser(*, with_simulate_options: bool = True) -> argparse.ArgumentParser:
    """The command line; ``simulate``'s many options are built only when it is the command
    (importing the simulator costs about half a second on every other command's start)."""
    parser = argparse.ArgumentParser(
        prog="waybill-watch", description="Real-time parcel-delivery anomaly detection on Kafka."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    worker = sub.add_parser("worker", help="the Faust worker: ingest + processing + /metrics")
    worker.set_defaults(func=_worker)

    ingest = sub.add_parser("ingest", help="the stateless HTTP ingest alone + /metrics")
    ingest.set_defaults(func=_ingest)

    replay = sub.add_parser("replay", help="offline backtest of captures, no Kafka")
    replay.add_argument("captures", nargs="+", help="capture files (JSON Lines); - for stdin")
    replay.add_argument("--out", required=True, help="anomalies as JSON Lines; - for stdout")
    replay.add_argument("--config", type=Path, help="settings file (TOML or JSON)")
    replay.add_argument("--until", help="advance the clock to this RFC 3339 time at the end")
    replay.add_argument(
        "--verify-signatures", action="store_true", help="verify feed signatures (needs secrets)"
    )
    replay.set_defaults(func=_replay)

    simulate = sub.add_parser("simulate", help="synthetic traffic with labelled anomalies")
    simulate.set_defaults(func=_simulate)
    if with_simulate_options:
        _add_simulate_arguments(simulate)

    demo = sub.add_parser("demo", help="local broker + worker + sample pushes + live anomalies")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument(
        "--simulate",
        type=int,
        default=300,
        metavar="N",
        help="simulated waybills produced to tracking.raw first (0: only the built-in sample)",
    )
    demo.set_defaults(func=_demo)

    schemas = sub.add_parser("schemas", help="write the JSON Schemas of the wire formats")
    schemas.add_argument("--out", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if files differ")
    schemas.set_defaults(func=_schemas)
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _worker(_: argparse.Namespace) -> int:
    import faust

    from waybill_watch.settings import Settings
    from waybill_watch.worker.app import create_worker
    from waybill_watch.worker.topics import ensure_topics

    settings = Settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(ensure_topics(settings), 60))
    except Exception as exc:  # no broker, bad layout: say so and stop
        print(
            f"waybill-watch: cannot prepare topics on {settings.kafka_bootstrap_servers}: {exc!r}",
            file=sys.stderr,
        )
        return 2
    from waybill_watch.worker.datadir import clean_shutdown_marker, prepare_data_dir

    prepare_data_dir(settings.data_dir)
    worker = create_worker(settings)
    try:
        faust.Worker(worker.app, loglevel=settings.log_level, loop=loop).execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code in (0, None):
            clean_shutdown_marker(settings.data_dir).touch()
        raise
    return 0  # pragma: no cover - execute_from_commandline exits


def _ingest(_: argparse.Namespace) -> int:
    from aiohttp import web

    from waybill_watch.settings import Settings
    from waybill_watch.worker.ingest_app import create_ingest_app

    settings = Settings()
    _logging(settings.log_level)
    web.run_app(
        create_ingest_app(settings),
        host=settings.web_bind,
        port=settings.web_port,
        access_log=None,
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from waybill_watch.replay_cli import run_replay

    return run_replay(args)


def _add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from waybill_watch.simulate.cli import add_arguments

    add_arguments(parser)


def _simulate(args: argparse.Namespace) -> int:
    from waybill_watch.simulate.cli import run

    return run(args)


def _demo(args: argparse.Namespace) -> int:
    from waybill_watch.demo import run_demo

    return run_demo(duration=args.duration, simulate=args.simulate)


def _schemas(args: argparse.Namespace) -> int:
    from waybill_watch.schemas import write_schemas

    changed = write_schemas(args.out, check=args.check)
    if args.check and changed:
        print("schemas differ from the models: " + ", ".join(changed), file=sys.stderr)
        return 1
    return 0
