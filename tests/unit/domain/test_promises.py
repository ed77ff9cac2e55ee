"""no_first_scan and delivery_overdue: deadlines from the merchant's order events."""

from __future__ import annotations

from waybill_watch.domain.ids import anomaly_id
from waybill_watch.domain.types import CourierAlertKind

from .helpers import WAYBILL, Driver, alert, at, of, scan, summary


def test_no_first_scan_24_hours_after_shipped() -> None:
    d = Driver()
    d.order("shipped", at(0), now=at(0, 1))
    assert d.next_due == at(24)
    assert d.tick(at(23, 59)) == []
    events = d.tick(at(24))
    assert summary(events) == [("no_first_scan", "open", ["no_scan"])]
    assert events[0].anomaly_id == anomaly_id("no_first_scan", WAYBILL, "first_scan")
    assert events[0].merchant == "shop-42"
    assert events[0].evidence["order_events"][0]["occurred_at"] == "2026-11-20T09:00:00.000+08:00"


def test_first_scan_resolves_no_first_scan() -> None:
    d = Driver()
    d.order("shipped", at(0))
    d.tick(at(30))
    resolved = of("no_first_scan", d.update(scan("picked_up", at(29)), now=at(31)))
    assert summary(resolved) == [("no_first_scan", "resolved", ["no_scan"])]


def test_a_scan_before_the_deadline_prevents_it() -> None:
    d = Driver()
    d.order("shipped", at(0))
    d.update(scan("info_received", at(3)))
    assert of("no_first_scan", d.tick(at(100))) == []


def test_kdniao_401_alone_opens_no_first_scan_then_threshold_updates() -> None:
    d = Driver()
    opened = d.update(now=at(5), alerts=(alert(CourierAlertKind.NO_FIRST_SCAN, at(5), code="401"),))
    assert summary(opened) == [("no_first_scan", "open", ["courier_reported"])]
    d.order("shipped", at(0), now=at(6))
    assert summary(d.tick(at(24))) == [
        ("no_first_scan", "updated", ["no_scan", "courier_reported"])
    ]


def test_delivery_overdue_when_the_promise_passes() -> None:
    d = Driver()
    d.order("shipped", at(0), promise=at(72))
    d.update(scan("picked_up", at(1)), scan("in_transit", at(30)))
    assert d.next_due == at(72)
    assert of("delivery_overdue", d.tick(at(71, 59))) == []
    events = of("delivery_overdue", d.tick(at(72)))
    assert summary(events) == [("delivery_overdue", "open", ["promise_passed"])]
    assert events[0].evidence["promised_delivery_at"] == "2026-11-23T09:00:00.000+08:00"

    resolved = of(
        "delivery_overdue",
        d.update(
            scan("out_for_delivery", at(75)), scan("delivered", at(76), sign_type="recipient")
        ),
    )
    assert summary(resolved) == [("delivery_overdue", "resolved", ["promise_passed"])]


def test_delivered_before_the_promise_is_never_overdue() -> None:
    d = Driver()
    d.order("shipped", at(0), promise=at(72))
    d.update(scan("out_for_delivery", at(40)), scan("delivered", at(41), sign_type="recipient"))
    assert d.next_due is None
    assert of("delivery_overdue", d.tick(at(100))) == []


def test_kdniao_402_opens_delivery_overdue() -> None:
    d = Driver()
    d.update(scan("in_transit", at(1)))
    events = of(
        "delivery_overdue",
        d.update(
            now=at(40), alerts=(alert(CourierAlertKind.DELIVERY_OVERDUE, at(40), code="402"),)
        ),
    )
    assert summary(events) == [("delivery_overdue", "open", ["courier_reported"])]
