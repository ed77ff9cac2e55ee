"""``waybill-watch replay CAPTURE... --out FILE``: the CLI glue around ``replay.Replay``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO

from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay, encode_anomaly
from waybill_watch.settings import Settings, load_settings
from waybill_watch.timefmt import TimeParseError, parse_rfc3339


def _lines(paths: list[str], stack: ExitStack) -> Iterator[bytes]:
    for path in paths:
        handle: IO[bytes] = (
            sys.stdin.buffer
            if path == "-"
            else stack.enter_context(
                open(path, "rb")  # noqa: SIM115 - closed by the ExitStack
            )
        )
        yield from handle


def _write(out: IO[bytes], data: bytes) -> None:
    out.write(data)


def run_replay(args: argparse.Namespace) -> int:
    """Run a backtest; exit 0 on success (malformed envelopes are reported, not fatal)."""
    try:
        settings = load_settings(args.config) if args.config else Settings()
    except (ValueError, OSError) as exc:  # validation, unparsable value, config file
        from waybill_watch.settings import settings_problem  # never echoes values (maybe secrets)

        problem = settings_problem(exc)
        print(f"waybill-watch replay: {problem}; fix the environment or --config", file=sys.stderr)
        return 2
    try:
        until = parse_rfc3339(args.until) if args.until else None
    except (TimeParseError, ValueError) as exc:
        print(f"waybill-watch replay: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        try:
            out: IO[bytes] = (
                sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
            )
            replay = Replay(
                settings.detection,
                build_feeds(settings),
                until=until,
                verify_signatures=args.verify_signatures,
                sink=lambda event: _write(out, encode_anomaly(event)),
            )
            for line in _lines(args.captures, stack):
                replay.process_line(line)
        except OSError as exc:
            print(f"waybill-watch replay: {exc}", file=sys.stderr)
            return 2
        stats = replay.finish()
    print(stats.summary(), file=sys.stderr)
    return 0
