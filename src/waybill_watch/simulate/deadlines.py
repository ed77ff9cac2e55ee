"""Scenarios of waiting too long or going backwards: stalls, lockers, first scans, promises.

Deadline scenarios wait ``threshold + margin`` (hours, never minutes) before anything new
happens, so the deadline has surely passed before the recovering scan's push arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from waybill_watch.simulate.model import HOUR, MINUTE, WaybillPlan
from waybill_watch.simulate.planner import Planner
from waybill_watch.simulate.scenarios import INF, NEVER_SHARE, FactScenarios, StallSites


class Scenarios(FactScenarios):
    """Every waybill-scope scenario, by anomaly type."""

    def __init__(self, planner: Planner, stalls: StallSites) -> None:
        super().__init__(planner, stalls)
        self.build: dict[str, Callable[[WaybillPlan, int], None]] = {
            "delivery_exception": self.delivery_exception,
            "suspicious_signature": self.suspicious_signature,
            "signed_not_received": self.signed_not_received,
            "status_regression": self.status_regression,
            "locker_uncollected": self.locker_uncollected,
            "transit_stall": self.transit_stall,
            "no_first_scan": self.no_first_scan,
            "delivery_overdue": self.delivery_overdue,
        }

    def hours(self, value: float) -> int:
        return int(value * HOUR)

    def status_regression(self, plan: WaybillPlan, ship: int) -> None:
        if self.p.chance(0.5):  # a scan after the signing, then signed again
            arrived, outlet = self.to_outlet(plan, ship)
            delivered = self.p.last_mile(plan, arrived, outlet, "recipient")
            t = self.p.in_hours(delivered + self.p.span(HOUR, 5 * HOUR), 8.0, 18.0)
            if self.p.chance(0.5):
                t = self.p.add(plan, t, "arrive_outlet", outlet)
                self.label(plan, "status_regression", "after_delivery", t)
                delivered = self.p.last_mile(plan, t, outlet, "recipient")
            else:
                t = self.p.add(plan, t, "redeliver", outlet)
                self.label(plan, "status_regression", "after_delivery", t)
                delivered = self.p.sign(
                    plan,
                    t + self.p.span(30 * MINUTE, 2 * HOUR),
                    outlet,
                    "recipient",
                    self.evening(t),
                )
        else:  # sent back to a transfer centre it had already left
            origin, dest, o, d = self.p.route(plan)
            middle = self.p.net.other_city(self.p.rng, origin, dest)
            hubs = self.p.hubs(plan.courier, origin, dest, via=middle)
            loop = [hubs[0], hubs[1], hubs[0], *hubs[2:]]
            t = self.p.start(plan, self.p.pickup_time(ship), o, loop[0], 1.0)
            t = self.p.arrive(plan, t, loop[0])
            t = self.p.leave(plan, t, loop[0], loop[1], self.p.hub_wait())
            t = self.p.arrive(plan, t, loop[1])
            t = self.p.leave(plan, t, loop[1], loop[2], self.p.hub_wait())
            t = self.p.arrive(plan, t, loop[2])
            self.label(plan, "status_regression", "site_loop", t, site=loop[2].name)
            arrived = self.p.through(plan, t, loop[2:], d)
            self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=None)
            delivered = self.p.last_mile(plan, arrived, d, "recipient")
        self.p.receipt(plan, delivered, 0.7)

    def locker_uncollected(self, plan: WaybillPlan, ship: int) -> None:
        arrived, outlet = self.to_outlet(plan, ship)
        how = self.p.rng.choice(("locker", "station"))
        t = self.out_for_delivery(plan, arrived, outlet)
        placed = self.p.add(plan, t + self.p.span(20 * MINUTE, 4 * HOUR), f"{how}_in", outlet)
        limit = self.hours(self.d.locker_uncollected_hours)
        if self.wants_alert(plan):
            alert_at = placed + int(limit * 0.8)
            self.alert(plan, alert_at, "412")
            self.label(plan, "locker_uncollected", "courier_reported", alert_at)
        else:
            self.label(plan, "locker_uncollected", "uncollected", placed + limit)
        if not self.p.chance(NEVER_SHARE):
            late = placed + limit + self.p.span(4 * HOUR, 30 * HOUR)
            collected = self.p.add(plan, self.p.in_hours(late, 7.0, 22.5), f"{how}_out", outlet)
            self.p.receipt(plan, collected, 0.6)

    def transit_stall(self, plan: WaybillPlan, ship: int) -> None:
        if self.p.chance(0.4):
            self.last_mile_stall(plan, ship)
            return
        limit = self.hours(self.d.transit_stall_hours)
        alert = self.wants_alert(plan)
        never = self.p.chance(NEVER_SHARE)
        for _ in range(12):  # find a transfer centre without other stalls at that time
            plan.scans.clear()
            origin, dest, o, d = self.p.route(plan)
            via = self.p.net.other_city(self.p.rng, origin, dest)
            hubs = self.p.hubs(plan.courier, origin, dest, via=via)
            at_hub = hubs.index(self.p.net.hub(plan.courier, via))
            t = self.p.start(plan, self.p.pickup_time(ship), o, hubs[0], 1.0)
            t = self.p.arrive(plan, t, hubs[0])
            for i in range(at_hub):
                t = self.p.leave(plan, t, hubs[i], hubs[i + 1], self.p.hub_wait())
                t = self.p.arrive(plan, t, hubs[i + 1])
            opens = t + (int(limit * 0.8) if alert else limit)
            resume = INF if never else t + limit + self.p.span(2 * HOUR, 24 * HOUR)
            key = f"{plan.courier}:{hubs[at_hub].name}"
            if self.stalls.fits(key, opens, resume):
                break
        self.stalls.add(key, opens, resume)
        reason = "courier_reported" if alert else "transit"
        self.label(plan, "transit_stall", reason, opens, site=hubs[at_hub].name)
        self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=None)
        if alert:
            self.alert(plan, opens, "403")
        if never:
            return
        arrived = self.p.through(plan, t, hubs[at_hub:], d, first_wait=resume - t)
        delivered = self.p.last_mile(plan, arrived, d, self.p.sign_method(plan))
        self.p.receipt(plan, delivered, 0.7)

    def last_mile_stall(self, plan: WaybillPlan, ship: int) -> None:
        limit = self.hours(self.d.last_mile_stall_hours)
        never = self.p.chance(NEVER_SHARE)
        for _ in range(12):
            plan.scans.clear()
            plan.orders.clear()
            arrived, outlet = self.to_outlet(plan, ship)
            t = self.out_for_delivery(plan, arrived, outlet)
            late = self.p.in_hours(t + limit + self.p.span(2 * HOUR, 14 * HOUR), 8.0, 19.0)
            resume = INF if never else late
            key = f"{plan.courier}:{outlet.name}"
            if self.stalls.fits(key, t + limit, resume):
                break
        self.stalls.add(key, t + limit, resume)
        self.label(plan, "transit_stall", "last_mile", t + limit, site=outlet.name)
        if not never:
            delivered = self.p.sign(plan, late, outlet, "recipient", self.evening(late))
            self.p.receipt(plan, delivered, 0.7)

    def no_first_scan(self, plan: WaybillPlan, ship: int) -> None:
        limit = self.hours(self.d.no_first_scan_hours)
        origin, dest, o, d = self.p.route(plan)
        self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=None)
        if self.wants_alert(plan):
            self.alert(plan, ship + int(limit * 0.8), "401")
            self.label(plan, "no_first_scan", "courier_reported", ship + int(limit * 0.8))
        else:
            self.label(plan, "no_first_scan", "no_scan", ship + limit)
        if self.p.chance(NEVER_SHARE):
            return
        pickup = self.p.in_hours(ship + limit + self.p.span(3 * HOUR, 30 * HOUR), 7.0, 21.0)
        hubs = self.p.hubs(plan.courier, origin, dest)
        arrived = self.p.transit(plan, pickup, o, hubs, d)
        delivered = self.p.last_mile(plan, arrived, d, self.p.sign_method(plan))
        self.p.receipt(plan, delivered, 0.85)

    def delivery_overdue(self, plan: WaybillPlan, ship: int) -> None:
        origin, dest, o, d = self.p.route(plan)
        hubs = self.p.hubs(plan.courier, origin, dest)
        arrived = self.p.transit(plan, self.p.pickup_time(ship), o, hubs, d, pace=1.5)
        delivered = self.p.last_mile(plan, arrived, d, self.p.rng.choice(("recipient", "proxy")))
        slack = min(20 * HOUR, int((delivered - ship) * 0.6))
        promised = delivered - self.p.span(4 * HOUR, max(4 * HOUR, slack))
        self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=promised)
        alert_at = promised - self.p.span(HOUR, 3 * HOUR)
        if plan.scans[0].at + 10 * MINUTE < alert_at and self.wants_alert(plan):
            self.alert(plan, alert_at, "402")
            self.label(plan, "delivery_overdue", "courier_reported", alert_at)
        else:
            self.label(plan, "delivery_overdue", "promise_passed", promised)
        self.p.receipt(plan, delivered, 0.7)
