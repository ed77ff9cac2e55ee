"""``waybill-watch simulate``: options, the run, the labels file and the summary.

Thresholds come from the same settings as ``replay`` (environment, ``--config``), so the
injected anomalies wait exactly as long as the detectors that must find them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.settings import Settings, load_settings
from waybill_watch.simulate.generator import Generator
from waybill_watch.simulate.model import ANOMALY_TYPES, GROUP_TYPES, WAYBILL_TYPES, SimOptions
from waybill_watch.simulate.places import COURIERS
from waybill_watch.simulate.sinks import SinkUnreachable, send_http, send_kafka, write_capture
from waybill_watch.timefmt import TimeParseError, local_now, parse_rfc3339

DEFAULT_START = "2026-11-02T00:00:00+08:00"
#: Group anomalies are injected once each by default from this many waybills on.
GROUPS_FROM = 500


def _flag(kind: str) -> str:
    return kind.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``simulate`` options (called by the main CLI)."""
    run = parser.add_argument_group("traffic")
    run.add_argument("--waybills", type=int, default=1000, help="waybills in the run")
    run.add_argument("--seed", type=int, default=1, help="same seed and options, same bytes")
    run.add_argument(
        "--start",
        default=DEFAULT_START,
        help=f"RFC 3339 origin of simulated time (default {DEFAULT_START}; "
        "'now' = the wall clock, not reproducible)",
    )
    run.add_argument("--days", type=int, help="shipping window in days (default: by volume)")
    run.add_argument(
        "--couriers", default=",".join(COURIERS), help="Kdniao ShipperCodes, comma-separated"
    )
    run.add_argument(
        "--feed",
        choices=["kdniao"],
        default="kdniao",
        help="courier feed to simulate (merchant order events always included)",
    )
    run.add_argument(
        "--share-101",
        type=float,
        default=0.1,
        help="share of normal waybills pushed as RequestType 101 (no Action)",
    )
    run.add_argument("--duplicate-rate", type=float, default=0.05)
    run.add_argument(
        "--late-rate",
        type=float,
        default=0.03,
        help="pushes arriving after a newer snapshot of the same waybill",
    )
    run.add_argument(
        "--batch-rate",
        type=float,
        default=0.15,
        help="pushes that carry several waybills (Count > 1)",
    )
    run.add_argument("--config", type=Path, help="settings file (thresholds), as for replay")

    rates = parser.add_argument_group("anomalies")
    rates.add_argument(
        "--anomaly-rate",
        type=float,
        default=0.01,
        help="share of waybills given each waybill-scope anomaly",
    )
    for kind in WAYBILL_TYPES:
        rates.add_argument(
            f"--rate-{_flag(kind)}", type=float, metavar="R", help=f"share of waybills with {kind}"
        )
    for kind in ANOMALY_TYPES:
        default = " (default 1 from 500 waybills)" if kind in GROUP_TYPES else ""
        rates.add_argument(
            f"--count-{_flag(kind)}",
            type=int,
            metavar="N",
            help=f"exact number of {kind} anomalies{default}",
        )

    out = parser.add_argument_group("output (one of --out, --http, --kafka)")
    out.add_argument("--out", help="capture file (JSON Lines of envelopes); - for stdout")
    out.add_argument("--labels", help="labels file (default: beside --out, *.labels.jsonl)")
    out.add_argument("--http", metavar="URL", help="POST to URL/callbacks/{feed}")
    out.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight")
    out.add_argument("--kafka", metavar="BOOTSTRAP", help="produce to {prefix}tracking.raw")
    out.add_argument("--topic-prefix", help="topic prefix (default: settings)")
    out.add_argument("--realtime", action="store_true", help="pace at simulated time (speed 1)")
    out.add_argument("--speed", type=float, help="pace at SPEED x simulated time")


def counts_for(args: argparse.Namespace, detection: DetectionSettings) -> dict[str, int]:
    """Anomalies per type: explicit counts win, else rate x waybills (groups: 1 from 500)."""
    counts: dict[str, int] = {}
    for kind in ANOMALY_TYPES:
        explicit = getattr(args, f"count_{kind}", None)
        if explicit is not None:
            counts[kind] = max(0, explicit)
        elif kind in GROUP_TYPES:
            counts[kind] = 1 if args.waybills >= GROUPS_FROM else 0
        else:
            rate = getattr(args, f"rate_{kind}", None)
            rate = args.anomaly_rate if rate is None else rate
            counts[kind] = round(max(0.0, rate) * args.waybills)
    return counts


def options_for(args: argparse.Namespace, settings: Settings) -> SimOptions:
    """SimOptions from parsed arguments; raises ValueError on bad input."""
    couriers = tuple(
        dict.fromkeys(c.strip().upper() for c in args.couriers.split(",") if c.strip())
    )
    unknown = [c for c in couriers if c not in COURIERS]
    if unknown or not couriers:
        raise ValueError(f"unknown courier codes {unknown}; known: {', '.join(COURIERS)}")
    try:
        start = local_now() if args.start == "now" else parse_rfc3339(args.start)
    except TimeParseError as exc:
        raise ValueError(str(exc)) from exc
    if args.waybills < 1:
        raise ValueError("--waybills must be at least 1")
    return SimOptions(
        waybills=args.waybills,
        seed=args.seed,
        start_ms=int(start.timestamp()) * 1000,
        days=args.days,
        couriers=couriers,
        counts=counts_for(args, settings.detection),
        share_101=args.share_101,
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        batch_rate=args.batch_rate,
        ebusiness_id=settings.kdniao_ebusiness_id or "1000001",
        kdniao_app_key=settings.secret_for("kdniao"),
        merchant_secret=settings.secret_for("merchant"),
    )


def labels_path(args: argparse.Namespace) -> Path | None:
    if args.labels:
        return Path(args.labels)
    if args.out and args.out != "-":
        out = Path(args.out)
        return out.with_name(out.name.removesuffix(".jsonl") + ".labels.jsonl")
    return None


def _deliver(args: argparse.Namespace, settings: Settings, generator: Generator) -> dict[str, Any]:
    """Send the run's envelopes to the one chosen sink; what the summary says about it."""
    speed = 1.0 if args.realtime else args.speed
    envelopes = generator.envelopes()
    if args.out:
        return {"written": write_capture(envelopes, args.out)}
    if args.http:
        concurrency = max(1, args.concurrency)
        return asyncio.run(
            send_http(envelopes, args.http, concurrency=concurrency, speed=speed)
        ).to_json()
    prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    topic = f"{prefix}tracking.raw"
    from waybill_watch.kafka_client import kafka_connection

    kafka = kafka_connection(settings, bootstrap=args.kafka)  # TLS/SASL settings too
    return asyncio.run(send_kafka(envelopes, kafka, topic, speed=speed)).to_json()


def run(args: argparse.Namespace) -> int:
    """Generate and deliver the traffic; the summary goes to stderr.

    Exit 2, with one line on stderr, on bad options, unusable settings (never echoing their
    values, which may be secrets) or a Kafka sink that cannot be reached at start."""
    sinks = [s for s in (args.out, args.http, args.kafka) if s]
    if len(sinks) != 1:
        print("simulate: give exactly one of --out, --http, --kafka", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except (ValueError, OSError) as exc:  # validation, unparsable value, config file
        from waybill_watch.settings import settings_problem

        print(
            f"simulate: {settings_problem(exc)}; fix the environment or --config file",
            file=sys.stderr,
        )
        return 2
    try:
        generator = Generator(options_for(args, settings), settings.detection)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        delivery = _deliver(args, settings, generator)
    except SinkUnreachable as exc:
        remedy = (
            "check --kafka or start a broker (make broker-up)"
            if args.kafka
            else "check --http or start a worker (waybill-watch worker)"
        )
        print(f"simulate: {exc}; {remedy}", file=sys.stderr)
        return 2
    path = labels_path(args)
    if path is not None:
        from waybill_watch.simulate.model import rfc3339

        with path.open("wb") as handle:
            for label in generator.labels:
                handle.write(orjson.dumps(label.to_json(rfc3339)) + b"\n")
    summary = {
        "anomalies": {k: sum(1 for lb in generator.labels if lb.type == k) for k in ANOMALY_TYPES},
        "stats": generator.stats.to_json(),
        "delivery": delivery,
        "labels": str(path) if path else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode(), file=sys.stderr)
    failed = delivery.get("failed", 0)
    return 1 if failed else 0
