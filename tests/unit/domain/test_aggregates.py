"""Site and courier scope: bulk_signing, site_stall_spike, feed_silence."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest

from waybill_watch.domain.aggregate_state import CourierState, SiteState
from waybill_watch.domain.aggregates import AggregateEngines, CourierEngine, SiteEngine
from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.ids import anomaly_id
from waybill_watch.domain.signals import Signal, SignalKind

from .helpers import at, summary

SITE = "ZTO:杭州西湖三墩站"


def signed(waybill: str, when: datetime) -> Signal:
    return Signal(
        SignalKind.RECIPIENT_SIGNED,
        key=SITE,
        courier="ZTO",
        at=when,
        site="杭州西湖三墩站",
        waybill=waybill,
        ref=f"e-{waybill}",
    )


def stall(kind: SignalKind, waybill: str, when: datetime) -> Signal:
    return Signal(kind, key=SITE, courier="ZTO", at=when, site="杭州西湖三墩站", waybill=waybill)


class SiteFeed:
    def __init__(self) -> None:
        self.engine = SiteEngine(DetectionSettings())
        self.state: SiteState | None = None
        self.next_due: datetime | None = None

    def send(self, signal: Signal, now: datetime) -> list:
        out = self.engine.on_signal(self.state, signal, now)
        self.state, self.next_due = out.state, out.next_due
        return out.anomalies


# -- bulk_signing ---------------------------------------------------------------------------


def test_bulk_signing_opens_at_the_20th_distinct_waybill_in_one_window() -> None:
    site = SiteFeed()
    events = []
    for i in range(19):
        events += site.send(signed(f"W{i:02d}", at(1, 0.5 * i)), at(1, 10))  # 10:00 .. 10:09
    assert events == []
    assert site.send(signed("W03", at(1, 9)), at(1, 10)) == []  # same waybill again

    opened = site.send(signed("W19", at(1, 9.9)), at(1, 11))
    assert summary(opened) == [("bulk_signing", "open", ["recipient_signatures"])]
    event = opened[0]
    assert (event.scope, event.subject, event.severity, event.courier) == (
        "site",
        SITE,
        "high",
        "ZTO",
    )
    assert event.anomaly_id == anomaly_id("bulk_signing", SITE, "2026-11-20T02:00:00+00:00")
    assert event.evidence["count"] == 20
    assert event.evidence["waybills"] == [f"W{i:02d}" for i in range(20)]
    assert event.evidence["window_start"] == "2026-11-20T10:00:00.000+08:00"
    assert event.evidence["window_end"] == "2026-11-20T10:10:00.000+08:00"

    updated = site.send(signed("W20", at(1, 1)), at(1, 12))
    assert summary(updated) == [("bulk_signing", "updated", ["recipient_signatures"])]
    assert updated[0].anomaly_id == event.anomaly_id
    assert updated[0].evidence["count"] == 21


def test_twenty_signatures_across_a_window_boundary_open_nothing() -> None:
    site = SiteFeed()
    events = []
    for i in range(10):
        events += site.send(signed(f"A{i}", at(0, 55 + 0.4 * i)), at(1, 10))  # 09:55..09:59
        events += site.send(signed(f"B{i}", at(1, 0.4 * i)), at(1, 10))  # 10:00..10:04
    assert events == []


def test_signing_windows_are_dropped_after_the_late_period() -> None:
    site = SiteFeed()
    site.send(signed("W1", at(1, 3)), at(1, 5))
    assert site.next_due == at(25, 10)  # window end 10:10 + 24 h
    assert site.state is not None
    out = site.engine.on_due(site.state, at(25, 10))
    assert out.state.windows == {}
    assert out.next_due is None
    assert site.send(signed("W2", at(1, 4)), at(25, 11)) == []  # too late for that window
    assert site.state.windows == {}


# -- site_stall_spike -----------------------------------------------------------------------


def test_site_stall_spike_opens_at_ten_updates_and_resolves_below_five() -> None:
    site = SiteFeed()
    events = []
    for i in range(9):
        events += site.send(stall(SignalKind.STALL_OPENED, f"S{i}", at(50)), at(50))
    assert events == []
    assert site.send(stall(SignalKind.STALL_OPENED, "S0", at(50)), at(50)) == []  # repeated

    opened = site.send(stall(SignalKind.STALL_OPENED, "S9", at(51)), at(51))
    assert summary(opened) == [("site_stall_spike", "open", ["stalls_open"])]
    assert opened[0].anomaly_id == anomaly_id("site_stall_spike", SITE, "1")
    assert opened[0].evidence["open_stalls"] == 10

    updated = site.send(stall(SignalKind.STALL_OPENED, "S10", at(52)), at(52))
    assert summary(updated) == [("site_stall_spike", "updated", ["stalls_open"])]

    closing = []
    for i in range(6):  # 11 -> 5 open: not yet below 5
        closing += site.send(stall(SignalKind.STALL_RESOLVED, f"S{i}", at(53)), at(53))
    assert closing == []
    resolved = site.send(stall(SignalKind.STALL_RESOLVED, "S6", at(54)), at(54))
    assert summary(resolved) == [("site_stall_spike", "resolved", ["stalls_open"])]

    reopening = []
    for i in range(20, 25):  # 4 still open + 5 = 9
        reopening += site.send(stall(SignalKind.STALL_OPENED, f"S{i}", at(60)), at(60))
    assert reopening == []
    second = site.send(stall(SignalKind.STALL_OPENED, "S99", at(61)), at(61))
    assert summary(second) == [("site_stall_spike", "open", ["stalls_open"])]
    assert second[0].anomaly_id == anomaly_id("site_stall_spike", SITE, "2")


# -- feed_silence ---------------------------------------------------------------------------


class CourierFeed:
    def __init__(self) -> None:
        self.engine = CourierEngine(DetectionSettings())
        self.state: CourierState | None = None
        self.next_due: datetime | None = None

    def update(self, received: datetime, now: datetime | None = None) -> list:
        out = self.engine.on_update_received(self.state, "SF", received, now or received)
        self.state, self.next_due = out.state, out.next_due
        return out.anomalies

    def tick(self, now: datetime) -> list:
        assert self.state is not None
        out = self.engine.on_due(self.state, now)
        self.state, self.next_due = out.state, out.next_due
        return out.anomalies


def test_feed_silence_after_30_quiet_minutes_of_a_busy_courier() -> None:
    sf = CourierFeed()
    for i in range(60):  # one update per minute, 09:00 .. 09:59
        assert sf.update(at(0, i)) == []
    assert sf.next_due == at(1, 29)
    assert sf.tick(at(1, 29) - timedelta(seconds=1)) == []  # 29 min 59 s of silence
    opened = sf.tick(at(1, 29))
    assert summary(opened) == [("feed_silence", "open", ["no_updates"])]
    event = opened[0]
    assert (event.scope, event.subject, event.courier, event.severity) == (
        "courier",
        "SF",
        "SF",
        "critical",
    )
    assert event.evidence["updates_in_lookback"] == 60
    assert event.evidence["last_update_at"] == "2026-11-20T09:59:00.000+08:00"

    resolved = sf.update(at(2))
    assert summary(resolved) == [("feed_silence", "resolved", ["no_updates"])]
    assert resolved[0].anomaly_id == event.anomaly_id


def test_a_quiet_courier_never_counts_as_silent() -> None:
    sf = CourierFeed()
    for i in range(59):
        sf.update(at(0, i))
    assert sf.next_due is None
    assert sf.tick(at(5)) == []


def test_updates_older_than_the_look_back_do_not_count() -> None:
    sf = CourierFeed()
    for i in range(30):
        sf.update(at(0, i))  # 09:00 .. 09:29
    for i in range(30):
        sf.update(at(1, 30 + i))  # 10:30 .. 10:59: only these 30 are within the hour
    assert sf.next_due is None


def test_aggregate_engines_dispatch_and_load_either_state() -> None:
    engines = AggregateEngines(DetectionSettings())
    site_out = engines.on_signal(None, signed("W1", at(1)), at(1))
    courier_out = engines.on_signal(
        None, Signal(SignalKind.UPDATE_RECEIVED, key="SF", courier="SF", at=at(1)), at(1)
    )
    assert isinstance(site_out.state, SiteState)
    assert isinstance(courier_out.state, CourierState)
    assert engines.load(site_out.state.to_bytes()) == site_out.state
    assert engines.load(courier_out.state.to_bytes()) == courier_out.state


def test_site_state_round_trip_with_windows_stalls_and_an_open_spike() -> None:
    site = SiteFeed()
    for i in range(12):
        site.send(stall(SignalKind.STALL_OPENED, f"S{i}", at(50)), at(50))
    site.send(signed("W1", at(1)), at(1, 1))
    assert site.state is not None and site.state.episodes
    assert SiteState.from_bytes(site.state.to_bytes()) == site.state


def test_site_stall_spike_updates_on_every_further_stall_even_below_its_peak() -> None:
    site = SiteFeed()
    for i in range(12):
        site.send(stall(SignalKind.STALL_OPENED, f"S{i}", at(50)), at(50))  # opens at 10
    for i in range(4):
        site.send(stall(SignalKind.STALL_RESOLVED, f"S{i}", at(51)), at(51))  # 8 open
    again = site.send(stall(SignalKind.STALL_OPENED, "S0", at(52)), at(52))  # 9 open, peak 12
    assert summary(again) == [("site_stall_spike", "updated", ["stalls_open"])]
    assert again[0].evidence["open_stalls"] == 9
    assert again[0].anomaly_id == anomaly_id("site_stall_spike", SITE, "1")


def test_bulk_signing_keeps_one_episode_per_window_and_drops_it_with_the_window() -> None:
    site = SiteFeed()
    events = []
    for i in range(20):
        events += site.send(signed(f"A{i:02d}", at(1, 0.2 * i)), at(1, 30))  # 10:00 window
        events += site.send(signed(f"B{i:02d}", at(1, 10 + 0.2 * i)), at(1, 30))  # 10:10
    assert [(e.status, e.evidence["window_start"]) for e in events] == [
        ("open", "2026-11-20T10:00:00.000+08:00"),
        ("open", "2026-11-20T10:10:00.000+08:00"),
    ]
    later = site.send(signed("A99", at(1, 5)), at(1, 31)) + site.send(
        signed("B99", at(1, 15)), at(1, 31)
    )
    assert [e.status for e in later] == ["updated", "updated"]
    assert [e.anomaly_id for e in later] == [e.anomaly_id for e in events]

    assert site.state is not None
    out = site.engine.on_due(site.state, at(25, 10))  # the 10:00 window is dropped
    assert out.anomalies == []  # silently: a bulk episode is never resolved
    assert sorted(out.state.windows) == [to_ms(at(1, 10))]
    assert len(out.state.episodes) == 1
    assert out.next_due == at(25, 20)


def test_a_version_1_site_state_still_loads_and_continues_its_episodes() -> None:
    """Version 1 kept the window starts of open bulk episodes (``opened``), no episodes."""
    start = to_ms(at(1))
    waybills = [f"W{i:02d}" for i in range(21)]
    stalls = [f"S{i}" for i in range(11)]
    spike = ["1", to_ms(at(50)), ["stalls_open"], 11]
    v1 = orjson.dumps(
        [
            1,
            "site",
            SITE,
            "ZTO",
            "杭州西湖三墩站",
            [[start, waybills]],
            [start],
            stalls,
            {"site_stall_spike": spike},
            1,
        ]
    )
    state = AggregateEngines.load(v1)
    assert isinstance(state, SiteState)
    assert state.windows == {start: set(waybills)}
    assert state.stalls == set(stalls) and state.spikes == 1
    site = SiteFeed()
    site.state = state

    bulk = site.send(signed("W99", at(1, 9)), at(1, 20))
    assert summary(bulk) == [("bulk_signing", "updated", ["recipient_signatures"])]
    assert bulk[0].anomaly_id == anomaly_id("bulk_signing", SITE, "2026-11-20T02:00:00+00:00")
    assert bulk[0].evidence["count"] == 22
    assert site.send(signed("W99", at(1, 9)), at(1, 21)) == []

    spiked = site.send(stall(SignalKind.STALL_OPENED, "S99", at(52)), at(52))
    assert summary(spiked) == [("site_stall_spike", "updated", ["stalls_open"])]
    assert spiked[0].anomaly_id == anomaly_id("site_stall_spike", SITE, "1")

    stored = site.state.to_bytes()
    assert orjson.loads(stored)[0] == 2
    assert SiteState.from_bytes(stored) == site.state


def test_a_version_1_courier_state_loads_unchanged() -> None:
    v1 = orjson.dumps([1, "courier", "SF", [[60_000, 3]], 61_000, {}])
    assert CourierState.from_bytes(v1) == CourierState("SF", {60_000: 3}, 61_000)
    assert CourierState.from_bytes(v1).to_bytes() == v1


def test_an_unknown_aggregate_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 9"):
        SiteState.from_bytes(orjson.dumps([9, "site"]))
    with pytest.raises(ValueError, match="version 2"):
        CourierState.from_bytes(orjson.dumps([2, "courier", "SF", [], None, {}]))
