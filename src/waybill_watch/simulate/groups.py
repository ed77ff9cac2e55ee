"""Group anomalies: crowds of otherwise normal waybills arranged to trip a site/courier detector.

* ``bulk_signing``: ``threshold + 2`` parcels handed over one morning at one outlet, all
  "signed by the recipient" within one epoch-aligned window that evening.
* ``site_stall_spike``: ``open_threshold + 2`` parcels reach one transfer centre within 6 h and
  sit there ``transit_stall_hours`` + 6–20 h: each is a ``transit_stall`` and together a spike.
* ``feed_silence``: a merchant's big pickup (``min_updates + 30`` scans within the quiet period)
  right before the courier's pushes stop for ``quiet + 15`` minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.simulate.model import HOUR, MINUTE, SECOND, Label, WaybillPlan, rfc3339
from waybill_watch.simulate.places import City
from waybill_watch.simulate.planner import DAY_MS, Planner
from waybill_watch.simulate.scenarios import StallSites

NewPlan = Callable[[str], WaybillPlan]


def group_sizes(detection: DetectionSettings) -> dict[str, int]:
    """Waybills each group anomaly needs."""
    return {
        "bulk_signing": detection.bulk_signing_threshold + 2,
        "feed_silence": detection.feed_silence_min_updates + 30,
        "site_stall_spike": detection.site_stall_open_threshold + 2,
    }


@dataclass(frozen=True, slots=True)
class Silence:
    """A courier's pushes held back during [start, end)."""

    courier: str
    start: int
    end: int


class Groups:
    """Builds group scenarios; members are fully planned up front (their number is small)."""

    def __init__(self, planner: Planner, stalls: StallSites, new_plan: NewPlan) -> None:
        self.p = planner
        self.d = planner.detection
        self.stalls = stalls
        self.new_plan = new_plan

    def _shift(self, plan: WaybillPlan, delta: int) -> None:
        for scan in plan.scans:
            scan.at += delta

    def _ship_and_confirm(self, plan: WaybillPlan, dest: City, delivered: int) -> None:
        ship = plan.scans[0].at - self.p.span(30 * MINUTE, 6 * HOUR)
        self.p.shipped(plan, ship, dest, with_dest=self.p.chance(0.7), promised=None)
        self.p.receipt(plan, delivered, 0.85)

    def bulk_signing(self, courier: str, day: int) -> tuple[list[WaybillPlan], Label]:
        """Signings crowded into one window at one outlet on the evening of ``day``."""
        city = self.p.rng.choice(self.p.net.cities)
        outlet = self.p.net.outlet(self.p.rng, courier, city)
        window = self.p.window_ms
        opens = (day + int(17.5 * HOUR)) // window * window + self.p.rng.randrange(6) * window
        count = self.d.bulk_signing_threshold + 2
        signed = sorted(
            opens + self.p.span(20 * SECOND, window - 20 * SECOND) for _ in range(count)
        )
        plans: list[WaybillPlan] = []
        for at in signed:
            plan = self.new_plan(courier)
            plan.scenario = "bulk_signing"
            origin = self.p.net.other_city(self.p.rng, city)
            o = self.p.net.outlet(self.p.rng, courier, origin)
            hubs = self.p.hubs(courier, origin, city)
            arrived = self.p.transit(plan, day - 3 * DAY_MS, o, hubs, outlet)
            self._shift(plan, day + 7 * HOUR - self.p.span(HOUR, 8 * HOUR) - arrived)
            handed = day + 8 * HOUR + self.p.span(0, 2 * HOUR)
            self.p.add(plan, handed, "out_for_delivery", outlet)
            self.p.force_signing(courier, outlet.name, at)
            self.p.add(plan, at, "signed_recipient", outlet)
            self._ship_and_confirm(plan, city, at)
            plans.append(plan)
        label = Label(
            "bulk_signing",
            f"{courier}:{outlet.name}",
            ["recipient_signatures"],
            signed[self.d.bulk_signing_threshold - 1],
            courier=courier,
            detail={
                "site": outlet.name,
                "window_start": rfc3339(opens),
                "waybills": [p.waybill for p in plans],
            },
        )
        return plans, label

    def site_stall_spike(self, courier: str, start: int) -> tuple[list[WaybillPlan], list[Label]]:
        """Parcels reaching one transfer centre in [start, start + 6 h) and stalling there."""
        city = self.p.rng.choice(self.p.net.cities)
        hub = self.p.net.hub(courier, city)
        limit = int(self.d.transit_stall_hours * HOUR)
        count = self.d.site_stall_open_threshold + 2
        arrivals = sorted(start + self.p.span(0, 6 * HOUR) for _ in range(count))
        all_open = start + 6 * HOUR + limit
        plans: list[WaybillPlan] = []
        labels: list[Label] = []
        for arrival in arrivals:
            plan = self.new_plan(courier)
            plan.scenario = "site_stall_spike"
            origin = self.p.net.other_city(self.p.rng, city)
            dest = self.p.net.other_city(self.p.rng, city, origin)
            o = self.p.net.outlet(self.p.rng, courier, origin)
            d = self.p.net.outlet(self.p.rng, courier, dest)
            hubs = self.p.hubs(courier, origin, dest, via=city)
            t = self.p.start(plan, start - 3 * DAY_MS, o, hubs[0], 1.0)
            t = self.p.arrive(plan, t, hubs[0])
            t = self.p.leave(plan, t, hubs[0], hub, self.p.hub_wait())
            t = self.p.arrive(plan, t, hub)
            self._shift(plan, arrival - t)
            resume = all_open + self.p.span(6 * HOUR, 20 * HOUR)
            arrived = self.p.through(plan, arrival, hubs[1:], d, first_wait=resume - arrival)
            delivered = self.p.last_mile(plan, arrived, d, self.p.sign_method(plan))
            self._ship_and_confirm(plan, dest, delivered)
            self.stalls.add(f"{courier}:{hub.name}", arrival + limit, resume)
            plan.labels.append(
                Label(
                    "transit_stall",
                    plan.waybill,
                    ["transit"],
                    arrival + limit,
                    plan.waybill,
                    courier,
                    {"site": hub.name, "group": "site_stall_spike"},
                )
            )
            plans.append(plan)
        labels.append(
            Label(
                "site_stall_spike",
                f"{courier}:{hub.name}",
                ["stalls_open"],
                arrivals[self.d.site_stall_open_threshold - 1] + limit,
                courier=courier,
                detail={"site": hub.name, "waybills": [p.waybill for p in plans]},
            )
        )
        return plans, labels

    def feed_silence(
        self, courier: str, quiet_from: int
    ) -> tuple[list[WaybillPlan], Label, Silence]:
        """A burst of pickups of one courier, then its pushes stop for ``quiet + 15`` min."""
        quiet = self.d.feed_silence_quiet_minutes * MINUTE
        count = self.d.feed_silence_min_updates + 30
        first, last = quiet_from - max(quiet - 3 * MINUTE, MINUTE), quiet_from - MINUTE
        origin = self.p.rng.choice(self.p.net.cities)
        warehouse = self.p.net.outlet(self.p.rng, courier, origin)
        merchant = f"shop-{self.p.rng.randrange(1, 41):02d}"
        plans: list[WaybillPlan] = []
        for i in range(count):
            plan = self.new_plan(courier)
            plan.scenario = "feed_silence"
            plan.merchant = merchant
            plan.first_delay = (5 * SECOND, 20 * SECOND)
            plan.retries = False
            pushed = first + (last - first) * i // count
            dest = self.p.net.other_city(self.p.rng, origin)
            d = self.p.net.outlet(self.p.rng, courier, dest)
            hubs = self.p.hubs(courier, origin, dest)
            self.p.add(plan, pushed - 25 * SECOND, "pickup", warehouse)
            t = quiet_from + self.p.span(2 * HOUR, 10 * HOUR)
            t = self.p.add(plan, t, "depart", warehouse, next=hubs[0].name)
            t = self.p.arrive(plan, t, hubs[0])
            arrived = self.p.through(plan, t, hubs, d)
            delivered = self.p.last_mile(plan, arrived, d, self.p.sign_method(plan))
            self._ship_and_confirm(plan, dest, delivered)
            plans.append(plan)
        silence = Silence(courier, quiet_from, quiet_from + quiet + 15 * MINUTE)
        label = Label(
            "feed_silence",
            courier,
            ["no_updates"],
            quiet_from - MINUTE + quiet,
            courier=courier,
            detail={"quiet_from": rfc3339(quiet_from), "resumes_at": rfc3339(silence.end)},
        )
        return plans, label, silence
