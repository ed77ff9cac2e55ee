"""Planning one waybill's scans: pickup, transfer centres, the last mile, order events.

Normal traffic is kept well clear of every detector threshold (contract §6 defaults): scans
in transit at most ~20 h apart (stall: 48 h), out-for-delivery to signing at most 5 h (24 h),
pickup within 13 h of shipping (24 h), lockers emptied within ~34 h (48 h), signings by day
(07:00–20:30) after a hand-over scan in the destination city, at most ``cap`` recipient
signings per courier:site per bulk window, and promises at least a day after delivery.
"""

from __future__ import annotations

import random

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.simulate.model import HOUR, MINUTE, SECOND, OrderSpec, ScanSpec, WaybillPlan
from waybill_watch.simulate.places import COURIERS, STREETS, City, Network, Site
from waybill_watch.simulate.texts import render

LOCAL_OFFSET_MS = 8 * HOUR  # Asia/Shanghai has had no DST since 1991
DAY_MS = 24 * HOUR


#: Relative volume of shipping per local hour (merchants ship by day).
HOURLY = (1, 1, 1, 1, 1, 1, 1, 6, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 8, 4, 2)


def shipping_offset(position: float) -> int:
    """ms after the first midnight for a position in days (monotone), shaped by ``HOURLY``."""
    day = int(position)
    target = (position - day) * sum(HOURLY)
    hour = 0
    while hour < 23 and target >= HOURLY[hour]:
        target -= HOURLY[hour]
        hour += 1
    offset = int((hour + min(target / HOURLY[hour], 0.999)) * HOUR) // SECOND * SECOND
    return day * DAY_MS + offset


def local_hour(ms: int) -> float:
    """Hour of day (fractional) in China local time."""
    return ((ms + LOCAL_OFFSET_MS) % DAY_MS) / HOUR


def local_midnight(ms: int) -> int:
    return ms - (ms + LOCAL_OFFSET_MS) % DAY_MS


class Planner:
    """Builds scan sequences with one shared random stream (determinism by call order)."""

    def __init__(self, rng: random.Random, network: Network, detection: DetectionSettings) -> None:
        self.rng = rng
        self.net = network
        self.detection = detection
        self.window_ms = detection.bulk_signing_window_minutes * MINUTE
        self.cap = max(1, detection.bulk_signing_threshold // 3)
        self._signings: dict[tuple[str, str, int], int] = {}

    # -- random helpers -------------------------------------------------------------------
    def span(self, lo: int, hi: int) -> int:
        """A random duration in [lo, hi] ms, whole seconds."""
        return self.rng.randint(lo // SECOND, hi // SECOND) * SECOND

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def in_hours(self, ms: int, start: float, end: float) -> int:
        """``ms`` if its local hour is in [start, end), else the next such hour (+ jitter)."""
        hour = local_hour(ms)
        if start <= hour < end:
            return ms
        day = local_midnight(ms) + (DAY_MS if hour >= end else 0)
        jitter = self.span(0, int(min(3.0, end - start) * HOUR))
        return day + int(start * HOUR) + jitter

    def delivery_slot(self, ms: int) -> int:
        """Out-for-delivery rounds: 07:30–10:30 and 13:00–15:30 local."""
        hour = local_hour(ms)
        if 7.5 <= hour < 10.5 or 13.0 <= hour < 15.5:
            return ms
        day = local_midnight(ms)
        if hour < 7.5:
            return day + int(7.5 * HOUR) + self.span(0, 3 * HOUR)
        if hour < 13.0:
            return day + 13 * HOUR + self.span(0, int(2.5 * HOUR))
        return day + DAY_MS + int(7.5 * HOUR) + self.span(0, 3 * HOUR)

    # -- trace building -------------------------------------------------------------------
    def add(self, plan: WaybillPlan, at: int, step: str, site: Site, **fields: str) -> int:
        """Append one scan at ``at`` (must not go back in time) and return ``at``."""
        if plan.scans and at <= plan.scans[-1].at:
            at = plan.scans[-1].at + self.span(MINUTE, 10 * MINUTE)
        brand = COURIERS[plan.courier].name
        action, text = render(self.rng, step, site=site.name, brand=brand, **fields)
        plan.scans.append(ScanSpec(at, action, text, site.city.name, site.name))
        return at

    def hubs(self, courier: str, origin: City, dest: City, via: City | None = None) -> list[Site]:
        """1–3 transfer centres: origin's, maybe one in between, destination's."""
        middle = via
        if middle is None and self.chance(0.4):
            middle = self.net.other_city(self.rng, origin, dest)
        cities = [origin, *([middle] if middle else []), dest]
        out: list[Site] = []
        for city in cities:
            hub = self.net.hub(courier, city)
            if hub not in out:
                out.append(hub)
        return out

    def start(self, plan: WaybillPlan, pickup: int, origin: Site, first: Site, pace: float) -> int:
        """Pickup at the origin outlet and its departure towards ``first``."""
        t = self.add(plan, pickup, "pickup", origin)
        gap = int(self.span(HOUR, 6 * HOUR) * pace)
        return self.add(plan, t + gap, "depart", origin, next=first.name)

    def arrive(self, plan: WaybillPlan, t: int, hub: Site, pace: float = 1.0) -> int:
        return self.add(plan, t + int(self.span(2 * HOUR, 12 * HOUR) * pace), "arrive_hub", hub)

    def leave(self, plan: WaybillPlan, t: int, hub: Site, following: Site, wait: int) -> int:
        return self.add(plan, t + wait, "depart_hub", hub, next=following.name)

    def hub_wait(self, pace: float = 1.0) -> int:
        return int(self.span(30 * MINUTE, 4 * HOUR) * pace)

    def reach_outlet(self, plan: WaybillPlan, t: int, outlet: Site, pace: float = 1.0) -> int:
        return self.add(plan, t + int(self.span(HOUR, 8 * HOUR) * pace), "arrive_outlet", outlet)

    def through(
        self,
        plan: WaybillPlan,
        t: int,
        hubs: list[Site],
        outlet: Site,
        pace: float = 1.0,
        first_wait: int | None = None,
    ) -> int:
        """Departure from ``hubs[0]`` (already arrived at) on to the delivery outlet."""
        for i, hub in enumerate(hubs):
            if i:
                t = self.arrive(plan, t, hub, pace)
            wait = first_wait if i == 0 and first_wait is not None else self.hub_wait(pace)
            following = hubs[i + 1] if i + 1 < len(hubs) else outlet
            t = self.leave(plan, t, hub, following, wait)
        return self.reach_outlet(plan, t, outlet, pace)

    def transit(
        self,
        plan: WaybillPlan,
        pickup: int,
        origin: Site,
        hubs: list[Site],
        outlet: Site,
        *,
        pace: float = 1.0,
    ) -> int:
        """Pickup → hubs → arrival at the delivery outlet; returns the arrival time."""
        t = self.start(plan, pickup, origin, hubs[0], pace)
        t = self.arrive(plan, t, hubs[0], pace)
        return self.through(plan, t, hubs, outlet, pace)

    def book_signing(self, courier: str, site: str, at: int, latest: int) -> int | None:
        """Reserve a recipient signing under the per-window cap; None when the day is full."""
        while True:
            window = at // self.window_ms
            key = (courier, site, window)
            if self._signings.get(key, 0) < self.cap:
                self._signings[key] = self._signings.get(key, 0) + 1
                return at
            at = (window + 1) * self.window_ms + self.span(SECOND, self.window_ms - SECOND)
            if at > latest:
                return None

    def force_signing(self, courier: str, site: str, at: int) -> None:
        """Count a signing that must happen at ``at`` (injected ones)."""
        key = (courier, site, at // self.window_ms)
        self._signings[key] = self._signings.get(key, 0) + 1

    def sign(self, plan: WaybillPlan, at: int, outlet: Site, how: str, latest: int) -> int:
        """A delivered scan: ``recipient`` (capped per window, else proxy) or ``proxy``."""
        if how == "recipient":
            booked = self.book_signing(plan.courier, outlet.name, at, latest)
            if booked is not None:
                return self.add(plan, booked, "signed_recipient", outlet)
        return self.add(plan, at, "signed_proxy", outlet)

    def last_mile(self, plan: WaybillPlan, arrived: int, outlet: Site, how: str) -> int:
        """Out for delivery, then signed (recipient/proxy) or locker/station and collected."""
        t202 = self.add(
            plan,
            self.delivery_slot(arrived + self.span(30 * MINUTE, 2 * HOUR)),
            "out_for_delivery",
            outlet,
        )
        evening = local_midnight(t202) + int(20.5 * HOUR)
        if how in ("recipient", "proxy"):
            at = min(t202 + self.span(20 * MINUTE, 5 * HOUR), evening - self.span(0, 30 * MINUTE))
            return self.sign(plan, at, outlet, how, evening)
        t211 = self.add(
            plan,
            t202 + self.span(20 * MINUTE, 4 * HOUR),
            f"{how}_in",
            outlet,
            street=self.rng.choice(STREETS),
        )
        collected = self.in_hours(t211 + self.span(HOUR, 22 * HOUR), 7.0, 22.5)
        return self.add(plan, collected, f"{how}_out", outlet)

    def sign_method(self, plan: WaybillPlan) -> str:
        if plan.request_type == "101":
            return "recipient" if self.chance(0.8) else "proxy"
        roll = self.rng.random()
        for how, share in (("recipient", 0.6), ("proxy", 0.15), ("locker", 0.15)):
            if roll < share:
                return how
            roll -= share
        return "station"

    # -- order events ---------------------------------------------------------------------
    def shipped(
        self, plan: WaybillPlan, at: int, dest: City, *, with_dest: bool, promised: int | None
    ) -> None:
        district = self.rng.choice(dest.districts)
        destination = (dest.province, dest.name, district) if with_dest else None
        plan.orders.append(OrderSpec(at, "shipped", promised, destination))

    def promise_after(self, ship: int, delivered: int) -> int:
        """End of a day at least four days after shipping and one day after delivery."""
        floor = max(ship + 4 * DAY_MS, delivered + DAY_MS)
        return local_midnight(floor) + DAY_MS - SECOND

    def receipt(self, plan: WaybillPlan, delivered: int, share: float) -> None:
        if self.chance(share):
            at = self.in_hours(delivered + self.span(HOUR, 72 * HOUR), 8.0, 23.0)
            plan.orders.append(OrderSpec(at, "receipt_confirmed"))

    # -- a whole normal life ----------------------------------------------------------------
    def route(self, plan: WaybillPlan) -> tuple[City, City, Site, Site]:
        origin, dest = self.net.two_cities(self.rng)
        o = self.net.outlet(self.rng, plan.courier, origin)
        d = self.net.outlet(self.rng, plan.courier, dest)
        return origin, dest, o, d

    def pickup_time(self, ship: int) -> int:
        """Pickup the same day by 21:00, or the next morning: at most 13 h after shipping."""
        hour = local_hour(ship)
        if 6.5 <= hour < 20.0:
            room = min(8 * HOUR, int((21.0 - hour) * HOUR) - MINUTE)
            return ship + self.span(30 * MINUTE, room)
        morning = local_midnight(ship) + (DAY_MS if hour >= 20.0 else 0) + 7 * HOUR
        return morning + self.span(0, 2 * HOUR)

    def normal(self, plan: WaybillPlan, ship: int) -> int:
        """A clean life; returns the delivery time."""
        origin, dest, o, d = self.route(plan)
        arrived = self.transit(
            plan, self.pickup_time(ship), o, self.hubs(plan.courier, origin, dest), d
        )
        delivered = self.last_mile(plan, arrived, d, self.sign_method(plan))
        promised = self.promise_after(ship, delivered) if self.chance(0.4) else None
        if self.chance(0.9):
            self.shipped(plan, ship, dest, with_dest=self.chance(0.7), promised=promised)
        self.receipt(plan, delivered, 0.85)
        return delivered
