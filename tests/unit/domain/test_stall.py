"""transit_stall and locker_uncollected: deadlines measured from the last scan's event time."""

from __future__ import annotations

from waybill_watch.domain.signals import SignalKind
from waybill_watch.domain.types import CourierAlertKind

from .helpers import RETENTION, WAYBILL, Driver, alert, at, of, scan, summary


def test_transit_stall_opens_at_exactly_48_hours_not_at_47h59() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0), site="杭州转运中心", city="杭州"))
    assert d.next_due == at(48)

    assert d.tick(at(47, 59)) == []
    events = d.tick(at(48))
    assert summary(events) == [("transit_stall", "open", ["transit"])]
    assert events[0].detected_at == at(48)
    assert events[0].evidence["hours_since_last_scan"] == 48.0
    assert events[0].evidence["threshold_hours"] == 48.0
    assert d.next_due is None


def test_last_mile_stall_after_24_hours() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0)), scan("out_for_delivery", at(10)))
    assert d.next_due == at(34)
    assert d.tick(at(33, 59)) == []
    assert summary(d.tick(at(34))) == [("transit_stall", "open", ["last_mile"])]


def test_newer_scan_resolves_and_restarts_the_clock() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0), site="A"))
    opened = d.tick(at(50))
    resolved = of("transit_stall", d.update(scan("in_transit", at(51), site="B")))
    assert summary(resolved) == [("transit_stall", "resolved", ["transit"])]
    assert resolved[0].anomaly_id == opened[0].anomaly_id
    assert d.next_due == at(99)
    again = d.tick(at(99))
    assert summary(again) == [("transit_stall", "open", ["transit"])]
    assert again[0].anomaly_id != opened[0].anomaly_id


def test_late_scan_older_than_the_last_one_does_not_resolve() -> None:
    d = Driver()
    d.update(scan("in_transit", at(10)))
    d.tick(at(58))
    assert d.update(scan("picked_up", at(0)), now=at(59)) == []


def test_a_push_after_the_deadline_first_fires_it_on_the_earlier_facts() -> None:
    """The deadline passed before the push arrived: open (on old facts), then resolve."""
    d = Driver()
    d.update(scan("in_transit", at(0)))
    events = d.update(scan("in_transit", at(47)), now=at(49))
    assert summary(events) == [
        ("transit_stall", "open", ["transit"]),
        ("transit_stall", "resolved", ["transit"]),
    ]
    assert d.next_due == at(95)


def test_scan_pushed_long_after_it_happened_opens_immediately() -> None:
    d = Driver()
    events = d.update(scan("in_transit", at(0)), now=at(60))
    assert summary(events) == [("transit_stall", "open", ["transit"])]


def test_delivered_or_exception_as_latest_status_never_stalls() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(0)), scan("delivered", at(1), sign_type="locker"))
    assert d.next_due == at(1) + RETENTION  # no detector deadline: only the retirement
    assert of("transit_stall", d.tick(at(500))) == []


def test_courier_reported_stall_then_our_threshold_updates_it() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0)))
    opened = d.update(now=at(30), alerts=(alert(CourierAlertKind.TRANSIT_STALL, at(30)),))
    assert summary(opened) == [("transit_stall", "open", ["courier_reported"])]
    assert opened[0].evidence["alerts"][0]["courier_code"] == "403"
    updated = d.tick(at(48))
    assert summary(updated) == [("transit_stall", "updated", ["transit", "courier_reported"])]
    assert updated[0].anomaly_id == opened[0].anomaly_id


def test_courier_alert_repeated_in_every_push_is_not_a_new_trigger() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0)))
    d.update(now=at(30), alerts=(alert(CourierAlertKind.TRANSIT_STALL, at(30)),))
    assert d.update(now=at(31), alerts=(alert(CourierAlertKind.TRANSIT_STALL, at(31)),)) == []


def test_stall_signals_carry_the_last_scans_site() -> None:
    d = Driver()
    d.update(scan("in_transit", at(0), site="杭州转运中心"))
    opened = d.tick(at(48))
    d.update(scan("in_transit", at(49), site="宁波"))
    stall_signals = [s for s in d.signals if s.kind != SignalKind.UPDATE_RECEIVED]
    assert [(s.kind, s.key, s.waybill, s.ref) for s in stall_signals] == [
        (SignalKind.STALL_OPENED, "YTO:杭州转运中心", WAYBILL, opened[0].anomaly_id),
        (SignalKind.STALL_RESOLVED, "YTO:杭州转运中心", WAYBILL, opened[0].anomaly_id),
    ]


# -- locker_uncollected ---------------------------------------------------------------------


def test_locker_uncollected_at_48_hours_and_delivery_resolves() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(0)), scan("available_for_pickup", at(2), site="丰巢柜"))
    assert d.next_due == at(50)
    assert d.tick(at(49, 59)) == []
    opened = d.tick(at(50))
    assert summary(opened) == [("locker_uncollected", "open", ["uncollected"])]
    assert opened[0].evidence["hours_waiting"] == 48.0

    resolved = of("locker_uncollected", d.update(scan("delivered", at(60), sign_type="locker")))
    assert summary(resolved) == [("locker_uncollected", "resolved", ["uncollected"])]


def test_receipt_confirmed_resolves_and_prevents_the_locker_episode() -> None:
    d = Driver()
    d.update(scan("available_for_pickup", at(2)))
    d.tick(at(50))
    resolved = of("locker_uncollected", d.order("receipt_confirmed", at(55)))
    assert summary(resolved) == [("locker_uncollected", "resolved", ["uncollected"])]

    early = Driver()
    early.update(scan("available_for_pickup", at(2)))
    early.order("receipt_confirmed", at(10))
    assert early.next_due == at(10) + RETENTION  # no detector deadline: only the retirement
    assert of("locker_uncollected", early.tick(at(60))) == []


def test_courier_reported_locker_alert_opens() -> None:
    d = Driver()
    d.update(scan("available_for_pickup", at(2)))
    events = d.update(
        now=at(20), alerts=(alert(CourierAlertKind.LOCKER_UNCOLLECTED, at(20), code="412"),)
    )
    assert summary(events) == [("locker_uncollected", "open", ["courier_reported"])]
    assert summary(d.tick(at(50))) == [
        ("locker_uncollected", "updated", ["uncollected", "courier_reported"])
    ]
