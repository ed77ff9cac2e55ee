"""Retirement: a quiet waybill's state becomes a small marker, then goes; history stays closed."""

from __future__ import annotations

from datetime import timedelta

from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.state import WaybillState
from waybill_watch.replay import Replay

from .helpers import RETENTION, WAYBILL, Driver, at, of, push, scan, summary

MARKER = timedelta(days=180)


def delivered_at_night(d: Driver) -> None:
    """A full trace signed at 03:00 (suspicious_signature), then the buyer confirms receipt."""
    d.update(
        scan("in_transit", at(-30), site="杭州转运中心"),
        scan("out_for_delivery", at(-8)),
        scan("delivered", at(-6), sign_type="recipient"),
        now=at(0),
    )
    d.order("receipt_confirmed", at(1))


def test_a_quiet_waybill_is_retired_exactly_after_the_retention() -> None:
    d = Driver()
    delivered_at_night(d)
    assert summary(of("suspicious_signature", d.events)) == [
        ("suspicious_signature", "open", ["odd_hours"]),
        ("suspicious_signature", "resolved", ["odd_hours"]),
    ]
    assert d.next_due == at(1) + RETENTION  # the receipt is the latest fact
    assert d.state is not None

    before = d.engine.on_due(d.state, at(1) + RETENTION - timedelta(milliseconds=1))
    assert not before.retired and before.state.scans

    out = d.engine.on_due(d.state, at(1) + RETENTION)
    assert out.retired and not out.forget and out.anomalies == []
    marker = out.state
    assert marker.is_marker and marker.scans == [] and marker.orders == []
    assert marker.waybill == WAYBILL and marker.merchant == "shop-42"
    assert marker.retired == (to_ms(at(1)), to_ms(at(1) + RETENTION))
    assert out.next_due == at(1) + RETENTION + MARKER
    assert len(marker.to_bytes()) < 120
    assert WaybillState.from_bytes(marker.to_bytes()) == marker


def test_an_old_trace_re_sent_after_retirement_reopens_nothing() -> None:
    d = Driver()
    delivered_at_night(d)
    d.tick(at(1) + RETENTION)
    assert d.state is not None and d.state.is_marker
    d.events.clear()

    late = at(1) + RETENTION + timedelta(days=3)
    d.update(
        scan("in_transit", at(-30), site="杭州转运中心", received=late),
        scan("out_for_delivery", at(-8), received=late),
        scan("delivered", at(-6), sign_type="recipient", received=late),
        now=late,
    )
    assert d.events == []  # without the horizon the 03:00 signature would open again
    assert d.state is not None and d.state.is_marker


def test_a_newer_fact_after_retirement_starts_the_waybill_afresh() -> None:
    d = Driver()
    d.update(
        scan("in_transit", at(0), site="A"),
        scan("out_for_delivery", at(4)),
        scan("delivered", at(5), sign_type="recipient"),
    )
    d.tick(at(5) + RETENTION)
    assert d.state is not None and d.state.is_marker

    later = at(5) + RETENTION + timedelta(days=1)
    d.update(scan("returning", later, site="B"), now=later)
    assert summary(of("delivery_exception", d.events)) == [
        ("delivery_exception", "open", ["returning"])
    ]
    assert [s.status for s in d.state.scans] == ["returning"]
    assert not d.state.is_marker


def test_the_marker_is_forgotten_after_its_own_period() -> None:
    d = Driver()
    d.update(scan("delivered", at(0), sign_type="locker"), scan("out_for_delivery", at(-1)))
    retired = d.engine.on_due(d.state, at(0) + RETENTION)  # type: ignore[arg-type]
    assert retired.retired

    early = d.engine.on_due(retired.state, at(0) + RETENTION + MARKER - timedelta(seconds=1))
    assert not early.forget
    gone = d.engine.on_due(retired.state, at(0) + RETENTION + MARKER)
    assert gone.forget and gone.next_due is None and gone.anomalies == []


def test_an_open_episode_keeps_the_state_however_long_it_is_quiet() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0), site="A"))
    assert summary(d.tick(at(48))) == [("transit_stall", "open", ["transit"])]
    assert d.next_due is None  # nothing scheduled: the episode waits for a newer scan
    out = d.engine.on_due(d.state, at(0) + 10 * RETENTION)  # type: ignore[arg-type]
    assert not out.retired and out.state.scans
    resolved = d.update(scan("in_transit", at(0) + 10 * RETENTION, site="B"))
    assert summary(of("transit_stall", resolved)) == [("transit_stall", "resolved", ["transit"])]


def test_a_pending_detector_deadline_comes_before_retirement() -> None:
    d = Driver()
    promise = at(0) + timedelta(days=40)
    d.order("shipped", at(0), promise=promise)
    d.update(scan("in_transit", at(1), site="A"))
    d.update(scan("out_for_delivery", at(2)), scan("failed_attempt", at(3)))
    assert d.next_due == promise  # later than the retention, and it is kept
    d.tick(promise)
    assert of("delivery_overdue", d.events)[-1].status == "open"
    assert d.next_due is None  # two episodes open: no retirement


def test_retention_zero_keeps_every_state() -> None:
    d = Driver(DetectionSettings(waybill_retention_days=0))
    d.update(scan("delivered", at(0), sign_type="locker"), scan("out_for_delivery", at(-1)))
    assert d.next_due is None
    out = d.engine.on_due(d.state, at(0) + 100 * RETENTION)  # type: ignore[arg-type]
    assert not out.retired and out.state.scans


def test_a_state_stored_before_retirement_existed_loads_as_never_retired() -> None:
    v1 = (
        b'[1,"YT1","YTO",null,[[1795140000000,2,"d464cb51c589cb0f7fcb107459e4e038","A"]],'
        b"[],[],[],{},null,1795140000000]"
    )
    state = WaybillState.from_bytes(v1)
    assert state.retired is None and not state.is_marker
    assert WaybillState.from_bytes(state.to_bytes()) == state


def test_replay_retires_and_forgets_quiet_waybills() -> None:
    replay = Replay(DetectionSettings())
    replay.process_update(push(scan("out_for_delivery", at(-1)), scan("delivered", at(0))))
    other = push(scan("in_transit", at(0), waybill="ZT0000000000002", courier="ZTO"))
    replay.process_update(other)
    replay.finish(at(0) + RETENTION)
    assert replay.stats.retired == 1  # the delivered one; the other has an open stall
    marker = replay.waybill_state(WAYBILL)
    assert marker is not None and marker.is_marker
    replay.finish(at(0) + RETENTION + MARKER)
    assert replay.stats.forgotten == 1
    assert replay.waybill_state(WAYBILL) is None
    assert replay.waybill_state("ZT0000000000002") is not None
