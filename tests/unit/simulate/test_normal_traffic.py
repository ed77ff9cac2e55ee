"""Normal traffic keeps clear of every detector: only labelled waybills/sites/couriers trip one.

Checked on the parsed capture with plain code of its own (not the detectors), so a simulator
mistake cannot hide behind a detector mistake.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.types import Scan, SignType, Status
from waybill_watch.feeds import build_feed
from waybill_watch.feeds.base import FeedConfig
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import zone

from .helpers import Run

D = DetectionSettings()
HOUR_S = 3600.0
#: How long a normal parcel may sit in each status (hours): the detectors' thresholds.
LIMITS = {
    Status.PICKED_UP: D.transit_stall_hours,
    Status.IN_TRANSIT: D.transit_stall_hours,
    Status.OUT_FOR_DELIVERY: D.last_mile_stall_hours,
    Status.AVAILABLE_FOR_PICKUP: D.locker_uncollected_hours,
}


@dataclass
class Parsed:
    scans: dict[str, dict[str, Scan]] = field(default_factory=lambda: defaultdict(dict))
    first_received: dict[str, datetime] = field(default_factory=dict)
    shipped: dict[str, datetime] = field(default_factory=dict)
    updates: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))


def parse(run: Run) -> Parsed:
    config = FeedConfig(allow_unsigned=True)
    feeds = {"kdniao": build_feed("kdniao", config), "merchant": build_feed("merchant", config)}
    out = Parsed()
    for line in run.lines:
        envelope = CaptureEnvelope.model_validate_json(line)
        result = feeds[envelope.feed].parse(envelope)
        for update in result.updates:
            out.updates[update.courier].append(update.received_at)
            if update.scans:
                out.first_received.setdefault(update.waybill, update.received_at)
            for scan in update.scans:
                out.scans[update.waybill].setdefault(scan.event_id, scan)
        for order in result.orders:
            if order.type == "shipped":
                out.shipped[order.waybill] = order.occurred_at
    return out


@pytest.fixture(scope="module")
def parsed(small_run: Run) -> Parsed:
    return parse(small_run)


def labelled(run: Run, kind: str, reason: str | None = None) -> set[str]:
    return {
        str(lb["subject"])
        for lb in run.labels
        if lb["type"] == kind and (reason is None or reason in lb["reasons"])
    }


def waybill_labels(run: Run) -> set[str]:
    return {str(lb["waybill"]) for lb in run.labels if lb["waybill"]}


def timeline(parsed: Parsed, waybill: str) -> list[Scan]:
    return sorted(parsed.scans[waybill].values(), key=lambda s: s.event_time)


def test_recipient_signings_crowd_only_at_labelled_sites(small_run: Run, parsed: Parsed) -> None:
    window = D.bulk_signing_window_minutes * 60
    signed: dict[tuple[str, int], set[str]] = defaultdict(set)
    for waybill, scans in parsed.scans.items():
        for scan in scans.values():
            if scan.status is Status.DELIVERED and scan.sign_type is SignType.RECIPIENT:
                key = (f"{scan.courier}:{scan.site}", int(scan.event_time.timestamp()) // window)
                signed[key].add(waybill)
    crowded = {
        site for (site, _), waybills in signed.items() if len(waybills) >= D.bulk_signing_threshold
    }
    assert crowded == labelled(small_run, "bulk_signing")
    normal_peak = max(len(w) for (site, _), w in signed.items() if site not in crowded)
    assert normal_peak <= D.bulk_signing_threshold // 2


def test_odd_hour_and_unannounced_signings_are_labelled(small_run: Run, parsed: Parsed) -> None:
    tz = zone(D.local_timezone)
    odd: set[str] = set()
    unannounced: set[str] = set()
    for waybill in parsed.scans:
        handed_over = False
        for scan in timeline(parsed, waybill):
            if scan.status in (Status.OUT_FOR_DELIVERY, Status.AVAILABLE_FOR_PICKUP):
                handed_over = True
            if scan.status is Status.DELIVERED:
                if D.odd_hours_start <= scan.event_time.astimezone(tz).hour < D.odd_hours_end:
                    odd.add(waybill)
                if not handed_over:
                    unannounced.add(waybill)
    assert odd == labelled(small_run, "suspicious_signature", "odd_hours")
    assert unannounced == labelled(small_run, "suspicious_signature", "no_delivery_scan")


def test_unlabelled_waybills_move_steadily_and_finish(small_run: Run, parsed: Parsed) -> None:
    special = waybill_labels(small_run)
    finished = {Status.DELIVERED}
    checked = 0
    for waybill in parsed.scans:
        if waybill in special:
            continue
        scans = timeline(parsed, waybill)
        for a, b in itertools.pairwise(scans):
            hours = (b.event_time - a.event_time).total_seconds() / HOUR_S
            assert hours < LIMITS[a.status] * 0.75, (waybill, a.status)
        assert scans[-1].status in finished, waybill
        assert all(s.status not in (Status.EXCEPTION, Status.FAILED_ATTEMPT) for s in scans)
        if waybill in parsed.shipped:
            waited = parsed.first_received[waybill] - parsed.shipped[waybill]
            assert waited.total_seconds() / HOUR_S < D.no_first_scan_hours * 0.6, waybill
        checked += 1
    assert checked > 500


def test_no_courier_falls_silent_unless_labelled(small_run: Run, parsed: Parsed) -> None:
    """A gap of ``quiet`` after ``min_updates`` in the look-back happens only where injected."""
    lookback, quiet = D.feed_silence_lookback_minutes * 60, D.feed_silence_quiet_minutes * 60
    silent: list[str] = []
    for courier, times in parsed.updates.items():
        stamps = sorted(t.timestamp() for t in times)
        start = 0
        for i, at in enumerate(stamps):
            while stamps[start] <= at - lookback - 60:
                start += 1
            following = stamps[i + 1] if i + 1 < len(stamps) else None
            busy = i + 1 - start >= D.feed_silence_min_updates * 0.6
            if busy and (following is None or following - at >= quiet):
                silent.append(courier)
    assert sorted(silent) == sorted(labelled(small_run, "feed_silence"))
