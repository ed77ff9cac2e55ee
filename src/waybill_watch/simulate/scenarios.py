"""Waybill-scope anomaly scenarios: a normal life bent in exactly one way, with its label.

Each scenario trips one detector and stays clear of every other one (no promise unless the
scenario is about promises, signings by day after a hand-over scan, and so on). Deadline
scenarios wait ``threshold + margin`` so the deadline fires for sure; ``courier_reported``
variants add Kdniao's own waybill alert (StateEx 401/402/403/412) before our threshold.
"""

from __future__ import annotations

from waybill_watch.simulate.model import HOUR, MINUTE, Label, OrderSpec, PushSpec, WaybillPlan
from waybill_watch.simulate.places import CITY_BY_NAME, Site
from waybill_watch.simulate.planner import DAY_MS, Planner, local_midnight
from waybill_watch.simulate.schedule import snapshot_size

ALERT_SHARE = 0.25  # share of deadline scenarios that carry Kdniao's own alert first
NEVER_SHARE = 0.25  # share of stalls / lockers / first scans that never recover in the run
INF = 1 << 62


class StallSites:
    """Open-stall intervals per courier:site, so injected stalls never add up to a spike."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, list[tuple[int, int]]] = {}

    def fits(self, key: str, start: int, end: int) -> bool:
        overlapping = sum(1 for s, e in self._open.get(key, ()) if s < end and e > start)
        return overlapping < self.limit

    def add(self, key: str, start: int, end: int) -> None:
        self._open.setdefault(key, []).append((start, end))


class FactScenarios:
    """Scenarios tripped by a fact (a scan, an order event); deadlines live in ``deadlines``."""

    def __init__(self, planner: Planner, stalls: StallSites) -> None:
        self.p = planner
        self.d = planner.detection
        self.stalls = stalls

    # -- helpers ------------------------------------------------------------------------
    def label(self, plan: WaybillPlan, kind: str, reason: str, at: int, **detail: object) -> None:
        plan.scenario = kind
        plan.labels.append(
            Label(kind, plan.waybill, [reason], at, plan.waybill, plan.courier, dict(detail))
        )

    def alert(self, plan: WaybillPlan, at: int, code: str) -> None:
        plan.pushes.append(PushSpec(at, snapshot_size(plan.scans, at), alert=code, kind="alert"))

    def wants_alert(self, plan: WaybillPlan) -> bool:
        return plan.request_type == "102" and self.p.chance(ALERT_SHARE)

    def to_outlet(self, plan: WaybillPlan, ship: int, pace: float = 1.0) -> tuple[int, Site]:
        """Shipped (with destination 70 %), transported to the delivery outlet."""
        origin, dest, o, d = self.p.route(plan)
        hubs = self.p.hubs(plan.courier, origin, dest)
        arrived = self.p.transit(plan, self.p.pickup_time(ship), o, hubs, d, pace=pace)
        self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=None)
        return arrived, d

    def out_for_delivery(self, plan: WaybillPlan, arrived: int, outlet: Site) -> int:
        at = self.p.delivery_slot(arrived + self.p.span(30 * MINUTE, 2 * HOUR))
        return self.p.add(plan, at, "out_for_delivery", outlet)

    def evening(self, at: int) -> int:
        return local_midnight(at) + int(20.5 * HOUR)

    # -- scenarios ----------------------------------------------------------------------
    def delivery_exception(self, plan: WaybillPlan, ship: int) -> None:
        arrived, outlet = self.to_outlet(plan, ship)
        roll = self.p.rng.random()
        if roll < 0.25:  # a problem parcel held at the outlet, then delivered
            t = self.p.add(plan, arrived + self.p.span(30 * MINUTE, 3 * HOUR), "exception", outlet)
            self.label(plan, "delivery_exception", "exception", t)
            arrived = t + self.p.span(2 * HOUR, 10 * HOUR)
            delivered = self.p.last_mile(plan, arrived, outlet, "recipient")
        elif roll < 0.5:  # refused at the door and sent back
            t = self.out_for_delivery(plan, arrived, outlet)
            t = self.p.add(plan, t + self.p.span(30 * MINUTE, 3 * HOUR), "rejected", outlet)
            self.label(plan, "delivery_exception", "rejected", t)
            self.return_trip(plan, t, outlet)
            return
        else:  # nobody home; delivered the next day
            t = self.out_for_delivery(plan, arrived, outlet)
            t = self.p.add(plan, t + self.p.span(30 * MINUTE, 4 * HOUR), "failed_attempt", outlet)
            self.label(plan, "delivery_exception", "failed_attempt", t)
            t = self.p.delivery_slot(local_midnight(t) + DAY_MS + 7 * HOUR)
            t = self.p.add(plan, t, "redeliver", outlet)
            at = t + self.p.span(20 * MINUTE, 4 * HOUR)
            booked = self.p.book_signing(plan.courier, outlet.name, at, self.evening(t))
            if booked is None:
                delivered = self.p.add(plan, at, "signed_proxy", outlet)
            else:
                delivered = self.p.add(plan, booked, "signed_after_exception", outlet)
        self.p.receipt(plan, delivered, 0.5)

    def return_trip(self, plan: WaybillPlan, t: int, outlet: Site) -> None:
        first = plan.scans[0]
        origin_outlet = Site(first.site, CITY_BY_NAME[first.city])
        dest_hub = self.p.net.hub(plan.courier, outlet.city)
        for site, following in ((outlet, dest_hub), (dest_hub, origin_outlet)):
            t = self.p.add(
                plan, t + self.p.span(2 * HOUR, 14 * HOUR), "returning", site, next=following.name
            )
        self.p.add(plan, t + self.p.span(4 * HOUR, 16 * HOUR), "returned", origin_outlet)

    def suspicious_signature(self, plan: WaybillPlan, ship: int) -> None:
        roll = self.p.rng.random()
        if roll < 1 / 3:  # signed with no hand-over scan before
            arrived, outlet = self.to_outlet(plan, ship)
            at = self.p.delivery_slot(arrived + self.p.span(30 * MINUTE, 2 * HOUR))
            delivered = self.p.sign(
                plan, at + self.p.span(0, 2 * HOUR), outlet, "recipient", self.evening(at)
            )
            self.label(plan, "suspicious_signature", "no_delivery_scan", delivered)
        elif roll < 2 / 3:  # signed in another city than the order's destination
            origin, dest, o, _ = self.p.route(plan)
            wrong = self.p.net.other_city(self.p.rng, origin, dest)
            outlet = self.p.net.outlet(self.p.rng, plan.courier, wrong)
            hubs = self.p.hubs(plan.courier, origin, wrong)
            arrived = self.p.transit(plan, self.p.pickup_time(ship), o, hubs, outlet)
            self.p.shipped(plan, ship, dest, with_dest=True, promised=None)
            delivered = self.p.last_mile(plan, arrived, outlet, "recipient")
            self.label(
                plan,
                "suspicious_signature",
                "city_mismatch",
                delivered,
                destination=dest.name,
                signed_in=wrong.name,
            )
        else:  # handed over in the evening, "signed" in the small hours
            arrived, outlet = self.to_outlet(plan, ship)
            t = self.p.in_hours(arrived + self.p.span(30 * MINUTE, 2 * HOUR), 18.5, 22.0)
            t = self.p.add(plan, t, "out_for_delivery", outlet)
            start, end = self.d.odd_hours_start, self.d.odd_hours_end
            night = local_midnight(t) + DAY_MS + start * HOUR
            at = night + self.p.span(30 * MINUTE, max(HOUR, (end - start) * HOUR - HOUR))
            self.p.force_signing(plan.courier, outlet.name, at)
            delivered = self.p.add(plan, at, "signed_recipient", outlet)
            self.label(plan, "suspicious_signature", "odd_hours", delivered)
        self.p.receipt(plan, delivered, 0.6)

    def signed_not_received(self, plan: WaybillPlan, ship: int) -> None:
        arrived, outlet = self.to_outlet(plan, ship)
        how = self.p.rng.choice(("recipient", "recipient", "proxy", "locker", "station"))
        delivered = self.p.last_mile(plan, arrived, outlet, how)
        report = self.p.in_hours(delivered + self.p.span(2 * HOUR, 30 * HOUR), 8.0, 23.0)
        plan.orders.append(OrderSpec(report, "not_received_reported"))
        self.label(plan, "signed_not_received", "not_received_reported", report, signed=how)
        if self.p.chance(0.4):
            confirmed = self.p.in_hours(report + self.p.span(24 * HOUR, 72 * HOUR), 8.0, 23.0)
            plan.orders.append(OrderSpec(confirmed, "receipt_confirmed"))
