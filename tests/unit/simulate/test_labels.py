"""Labels: one per injected anomaly, the requested numbers, the contract's subjects and reasons."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.simulate import cli
from waybill_watch.simulate.generator import Generator, group_sizes
from waybill_watch.simulate.model import ANOMALY_TYPES, GROUP_TYPES, WAYBILL_TYPES
from waybill_watch.simulate.places import COURIERS

from .helpers import Run, envelopes, options

REASONS = {
    "delivery_exception": {"failed_attempt", "exception", "rejected", "returning"},
    "suspicious_signature": {"no_delivery_scan", "city_mismatch", "odd_hours"},
    "signed_not_received": {"not_received_reported"},
    "status_regression": {"after_delivery", "site_loop"},
    "locker_uncollected": {"uncollected", "courier_reported"},
    "transit_stall": {"transit", "last_mile", "courier_reported"},
    "no_first_scan": {"no_scan", "courier_reported"},
    "delivery_overdue": {"promise_passed", "courier_reported"},
    "bulk_signing": {"recipient_signatures"},
    "feed_silence": {"no_updates"},
    "site_stall_spike": {"stalls_open"},
}


def test_every_requested_anomaly_is_labelled_once(small_run: Run) -> None:
    counts = Counter(str(lb["type"]) for lb in small_run.labels)
    spike = group_sizes(DetectionSettings())["site_stall_spike"]
    expected = {kind: 4 for kind in WAYBILL_TYPES} | dict.fromkeys(GROUP_TYPES, 1)
    expected["transit_stall"] += spike  # each parcel of the spike is a stall of its own
    assert counts == expected
    keys = [(lb["type"], lb["subject"]) for lb in small_run.labels]
    assert len(keys) == len(set(keys))


def test_subjects_and_reasons_follow_the_contract(small_run: Run) -> None:
    pushed = b"".join(small_run.lines)
    for label in small_run.labels:
        kind, subject = str(label["type"]), str(label["subject"])
        assert set(label["reasons"]) <= REASONS[kind]
        assert label["reasons"]
        if kind in WAYBILL_TYPES:
            assert label["scope"] == "waybill"
            assert subject == label["waybill"]
            assert subject.encode() in pushed
        elif kind == "feed_silence":
            assert label["scope"] == "courier"
            assert subject in COURIERS
        else:
            assert label["scope"] == "site"
            courier, _, site = subject.partition(":")
            assert courier in COURIERS
            assert site
            assert len(label["detail"]["waybills"]) >= 10


def test_labels_come_sorted_by_trigger_time(small_run: Run) -> None:
    times = [str(lb["trigger_at"]) for lb in small_run.labels]
    assert times == sorted(times)


def test_the_run_ends_after_every_deadline(small_run: Run) -> None:
    last = envelopes(small_run)[-1]["received_at"]
    assert all(str(lb["trigger_at"]) < last for lb in small_run.labels)


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(["--out", "x.jsonl", *argv])


def test_rates_counts_and_group_defaults() -> None:
    detection = DetectionSettings()
    counts = cli.counts_for(parsed("--waybills", "1000", "--anomaly-rate", "0.02"), detection)
    assert counts == {k: 20 for k in WAYBILL_TYPES} | dict.fromkeys(GROUP_TYPES, 1)
    args = parsed(
        "--waybills",
        "400",
        "--rate-transit-stall",
        "0.1",
        "--count-no-first-scan",
        "7",
        "--count-bulk-signing",
        "2",
    )
    counts = cli.counts_for(args, detection)
    assert counts["transit_stall"] == 40
    assert counts["no_first_scan"] == 7
    assert counts["delivery_overdue"] == 4
    assert counts["bulk_signing"] == 2
    assert counts["feed_silence"] == counts["site_stall_spike"] == 0  # below 500 waybills
    assert set(counts) == set(ANOMALY_TYPES)


def test_too_few_waybills_for_the_anomalies_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        Generator(options(waybills=150), DetectionSettings())
