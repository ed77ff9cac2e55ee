"""Helpers of the simulator tests: one call = one finished run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds.common import read_form
from waybill_watch.simulate.encode import Envelope
from waybill_watch.simulate.generator import Generator
from waybill_watch.simulate.model import ANOMALY_TYPES, GROUP_TYPES, Label, SimOptions, rfc3339
from waybill_watch.timefmt import parse_rfc3339

START = parse_rfc3339("2026-11-02T00:00:00+08:00")
APP_KEY = "sim-test-appkey"
MERCHANT_SECRET = "sim-test-merchant-secret"


@dataclass
class Run:
    """A finished run: capture lines, labels (as written) and the generator."""

    lines: list[bytes]
    labels: list[dict[str, Any]]
    generator: Generator
    generator_envelopes: list[Envelope]

    @property
    def label_lines(self) -> list[bytes]:
        return [orjson.dumps(lb) + b"\n" for lb in self.labels]


def options(**overrides: object) -> SimOptions:
    counts = {kind: 4 for kind in ANOMALY_TYPES}
    counts.update(dict.fromkeys(GROUP_TYPES, 1))
    base: dict[str, object] = {
        "waybills": 700,
        "seed": 3,
        "start_ms": int(START.timestamp()) * 1000,
        "counts": counts,
        "kdniao_app_key": APP_KEY,
        "merchant_secret": MERCHANT_SECRET,
    }
    base.update(overrides)
    return SimOptions(**base)  # type: ignore[arg-type]


def simulate(opts: SimOptions, detection: DetectionSettings | None = None) -> Run:
    generator = Generator(opts, detection or DetectionSettings())
    produced = list(generator.envelopes())
    labels = [label.to_json(rfc3339) for label in generator.labels]
    return Run([envelope.line() for envelope in produced], labels, generator, produced)


def labels_of(run: Run) -> list[Label]:
    return run.generator.labels


def envelopes(run: Run) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in run.lines]


def kdniao_push(envelope: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(decoded form fields, RequestData object) of a Kdniao envelope."""
    fields = {name: field.value for name, field in read_form(envelope["body"]).items()}
    return fields, orjson.loads(fields["RequestData"])
