"""The ``waybill-watch`` command line (contract §2)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from waybill_watch import __version__

if TYPE_CHECKING:
    from waybill_watch.settings import Settings
    from waybill_watch.worker.app import Worker

#: What an operator does about Kafka that cannot be reached at start.
KAFKA_REMEDY = "set KAFKA_BOOTSTRAP_SERVERS or start a broker (make broker-up)"
#: ... and about a broker that answered but refused the login or the TLS handshake (the
#: error itself names the settings to check).
KAFKA_SECURITY_REMEDY = "fix the Kafka TLS/SASL settings named above"


def kafka_remedy(exc: BaseException) -> str:
    """The remedy for a Kafka error at start: reachability, or the security settings."""
    from waybill_watch.kafka_client import KafkaSecurityError

    seen: BaseException | None = exc
    while seen is not None:  # the security error may be the cause of a wrapper's
        if isinstance(seen, KafkaSecurityError):
            return KAFKA_SECURITY_REMEDY
        seen = getattr(seen, "cause", None) or seen.__cause__
    return KAFKA_REMEDY


#: How long the worker keeps building its stream engine while Kafka fails transiently.
ENGINE_START_S = 60.0

log = logging.getLogger(__name__)


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

    worker = sub.add_parser("worker", help="the worker: ingest + processing + /metrics")
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

    cases = sub.add_parser("cases", help="case management: SOP ladder, case board, REST API")
    from waybill_watch.cases.cli import add_arguments as add_cases_arguments

    add_cases_arguments(cases)
    cases.set_defaults(func=_cases)

    notify = sub.add_parser("notify", help="notifications: webhooks, chat robots, e-mail")
    from waybill_watch.notify.cli import add_arguments as add_notify_arguments

    add_notify_arguments(notify)
    notify.set_defaults(func=_notify)

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
    """Run the worker until stopped (SIGTERM/SIGINT: commit and close cleanly).

    Exit codes as for ``ingest``: 2, with one line on stderr, when the settings are invalid,
    the topics cannot be prepared (no broker, malformed address, a topic layout that breaks
    co-partitioning) or the HTTP port is taken."""
    settings = _start_settings("worker")
    if settings is None:
        return 2
    _logging(settings.log_level)  # quix-streams logs through ours (loglevel=None)

    from waybill_watch.settings import error_detail
    from waybill_watch.worker.app import create_worker, serve_http
    from waybill_watch.worker.datadir import disk_error, explain_lock_retries
    from waybill_watch.worker.topics import TopicLayoutError, ensure_topics

    explain_lock_retries(settings.data_dir)  # quix-streams calls a full disk a held lock

    bootstrap = settings.kafka_bootstrap_servers
    try:
        asyncio.run(asyncio.wait_for(ensure_topics(settings), 60))
    except TopicLayoutError as exc:
        return _cannot_start(
            "worker",
            f"the topics on {bootstrap} do not fit ({exc})",
            "recreate them or set WAYBILL_WATCH_TOPIC_PREFIX",
        )
    except Exception as exc:  # no broker, a malformed address, no answer within 60 s
        return _cannot_start(
            "worker",
            f"cannot prepare topics on Kafka at {bootstrap} ({error_detail(exc)})",
            kafka_remedy(exc),
        )
    from confluent_kafka import KafkaException

    try:
        worker = create_worker_retrying(lambda: create_worker(settings), ENGINE_START_S)
    except KafkaException as exc:  # still failing after the retries, or not transient
        return _cannot_start(
            "worker",
            f"cannot set up the stream engine on Kafka at {bootstrap} ({error_detail(exc)})",
            kafka_remedy(exc),
        )
    try:
        stop_http = serve_http(worker, settings)
    except OSError as exc:
        return _cannot_start(
            "worker",
            f"cannot listen on {settings.web_bind}:{settings.web_port} ({error_detail(exc)})",
            "set WAYBILL_WATCH_WEB_PORT to a free port",
        )

    def rebuilt() -> Worker:
        worker.rebuild()
        return worker

    try:
        worker.run(rebuild=lambda: create_worker_retrying(rebuilt, ENGINE_START_S))
    except Exception as exc:
        disk = disk_error(exc)
        if disk is None:
            raise
        log.debug("the data dir failed", exc_info=exc)
        return _cannot_start(
            "worker",
            f"its data dir {settings.data_dir} cannot be written ({disk.strerror or disk})",
            "free space on (or remount read-write) the volume of WAYBILL_WATCH_DATA_DIR; "
            "the state is restored from the changelogs if it is lost",
        )
    finally:
        stop_http()
    return 0


def create_worker_retrying(
    create: Callable[[], Worker], within: float, pause: float = 1.0
) -> Worker:
    """``create()``, tried again while it fails with a transient Kafka error, for ``within`` s.

    Building the engine asks the cluster about every topic (quix-streams' topic inspection,
    ``DescribeConfigs`` to the broker the metadata names as controller). A broker that just
    died stays named there until the controller fences it (KRaft: ``broker.session.timeout.ms``,
    9 s), and the request then times out: a worker restarted in that window used to exit with a
    traceback although the cluster was healthy again seconds later.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return create()
        except Exception as exc:
            if not is_transient_kafka_error(exc) or time.monotonic() + pause >= deadline:
                raise
            log.warning("building the stream engine failed (%s); retrying", exc)
            time.sleep(pause)


def is_transient_kafka_error(exc: BaseException) -> bool:
    """A librdkafka error that a later attempt may not meet (timeouts, lost connections), or
    a topic the engine just created that the broker's metadata does not show yet (seen on a
    loaded broker: quix-streams creates a changelog topic, then fails to find it)."""
    from confluent_kafka import KafkaError, KafkaException
    from quixstreams.models.topics.exceptions import TopicNotFoundError

    if isinstance(exc, TopicNotFoundError):
        return True
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    if not isinstance(error, KafkaError):
        return False
    transient = {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
    return bool(error.retriable()) or error.code() in transient


def kafka_start_failure(command: str, settings: Settings, exc: Exception) -> int | None:
    """Exit code 2 with one line for an error a service met while starting on Kafka (topics
    that do not fit, no broker, a refused login); None for any other error (re-raise it)."""
    from waybill_watch.settings import error_detail
    from waybill_watch.worker.topics import TopicLayoutError

    bootstrap = settings.kafka_bootstrap_servers
    if isinstance(exc, TopicLayoutError):
        return _cannot_start(
            command,
            f"the topics on {bootstrap} do not fit ({exc})",
            "recreate them or set WAYBILL_WATCH_TOPIC_PREFIX",
        )
    if "kafka" in type(exc).__module__.lower() or isinstance(exc, TimeoutError):
        return _cannot_start(
            command,
            f"cannot reach Kafka at {bootstrap} ({error_detail(exc)})",
            kafka_remedy(exc),
        )
    return None


def _cannot_start(command: str, problem: str, remedy: str) -> int:
    """One line on stderr: what ``command`` tried, and what to change; exit code 2.

    Never a traceback: the operator has a setting to fix, which restarting would not."""
    print(f"waybill-watch {command}: {problem}; {remedy}", file=sys.stderr)
    return 2


def _start_settings(command: str) -> Settings | None:
    """The settings, or ``None`` after saying on stderr why they are unusable."""
    from waybill_watch.settings import Settings, settings_problem

    try:
        return Settings()
    except (ValueError, OSError) as exc:  # validation, unparsable value, config file
        _cannot_start(command, settings_problem(exc), "fix the environment or config file")
        return None


def _cases(args: argparse.Namespace) -> int:
    """The case service (contract §9) and its admin actions; see ``cases/cli.py``."""
    settings = _start_settings("cases")
    if settings is None:
        return 2
    _logging(settings.log_level)
    from waybill_watch.cases.cli import run

    return run(args, settings)


def _notify(args: argparse.Namespace) -> int:
    """The notifier (contract §9); see ``notify/cli.py``."""
    settings = _start_settings("notify")
    if settings is None:
        return 2
    _logging(settings.log_level)
    from waybill_watch.notify.cli import run

    return run(args, settings)


def _ingest(_: argparse.Namespace) -> int:
    """Serve the ingest until stopped.

    Exit codes: 0 after a clean stop; 2 when it cannot start because of its configuration or
    surroundings: invalid settings, no Kafka broker reachable at the bootstrap servers (or a
    malformed address), or the HTTP port cannot be bound. Each is one line on stderr saying
    what was tried and what to change, never a traceback: the operator has a setting to fix,
    which restarting the process would not."""
    from aiohttp import web

    from waybill_watch.web import EdgeLimits
    from waybill_watch.worker.ingest_app import create_ingest_app
    from waybill_watch.worker.publisher import KafkaStartError

    def cannot_start(problem: str, remedy: str) -> int:
        return _cannot_start("ingest", problem, remedy)

    settings = _start_settings("ingest")
    if settings is None:
        return 2
    _logging(settings.log_level)
    try:
        limits = EdgeLimits.from_settings(settings)
        web.run_app(
            create_ingest_app(settings),
            host=settings.web_bind,
            port=settings.web_port,
            access_log=None,
            keepalive_timeout=limits.header_timeout_seconds,
            **limits.handler_args(),  # run_app hands its other keywords to the AppRunner
        )
    except KafkaStartError as exc:
        return cannot_start(
            f"cannot reach Kafka at {exc.bootstrap} ({exc.detail})",
            kafka_remedy(exc),
        )
    except OSError as exc:  # out of run_app, only from binding the listening socket
        return cannot_start(
            f"cannot listen on {settings.web_bind}:{settings.web_port} ({exc})",
            "set WAYBILL_WATCH_WEB_PORT / WAYBILL_WATCH_WEB_BIND or free the port",
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
