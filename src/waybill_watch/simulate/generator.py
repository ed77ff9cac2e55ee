"""The streaming generator: waybills are planned when shipped; pushes come out in time order.

Each courier has a heap of pending pushes and the merchant side one of order events; waybills
are created lazily at their ship time, so memory follows the parcels in flight, not the run.
``received_at`` never decreases (a batch goes out at its last member's time; anything due
earlier waits for it). A guard keeps busy couriers from falling silent by accident (a
duplicate re-push after ``quiet / 2`` of nothing), except inside an injected silence.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from typing import Any

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.simulate.deadlines import Scenarios
from waybill_watch.simulate.encode import (
    Envelope,
    kdniao_envelope,
    kdniao_push,
    merchant_envelope,
    order_json,
)
from waybill_watch.simulate.groups import Groups, Silence, group_sizes
from waybill_watch.simulate.model import (
    DAY,
    GROUP_TYPES,
    HOUR,
    MINUTE,
    SECOND,
    WAYBILL_TYPES,
    Label,
    PushSpec,
    SimOptions,
    Stats,
    WaybillPlan,
)
from waybill_watch.simulate.places import COURIERS, Network
from waybill_watch.simulate.planner import Planner, local_midnight, shipping_offset
from waybill_watch.simulate.scenarios import INF, StallSites
from waybill_watch.simulate.schedule import plan_pushes

BATCH_SPAN = 90 * SECOND


class Generator:
    """One simulated run; iterate ``envelopes()`` once, then read ``labels`` and ``stats``."""

    def __init__(self, options: SimOptions, detection: DetectionSettings) -> None:
        self.o = options
        self.d = detection
        self.rng = random.Random(options.seed)  # noqa: S311 - reproducible, not secret
        self.net = Network(self.rng, options.couriers)
        self.planner = Planner(self.rng, self.net, detection)
        self.stalls = StallSites(max(1, min(3, detection.site_stall_resolve_below - 1)))
        self.scenarios = Scenarios(self.planner, self.stalls)
        self.labels: list[Label] = []
        self.stats = Stats()
        self.silences: list[Silence] = []
        self.clock = options.start_ms
        self._seq = 0
        self._serial = 0
        self._number_base = self.rng.randrange(10**8, 10**9)
        self._weights = [COURIERS[c].weight for c in options.couriers]
        self._heaps: dict[str, list[Any]] = {"spawn": [], "merchant": []}
        self._heaps.update({c: [] for c in options.couriers})
        self._recent: dict[str, deque[int]] = {c: deque() for c in options.couriers}
        self._real: dict[str, deque[int]] = {c: deque() for c in options.couriers}
        fillers = (
            detection.feed_silence_lookback_minutes * 2 // detection.feed_silence_quiet_minutes
        )
        self._guard_on = fillers + 2 < math.ceil(0.6 * detection.feed_silence_min_updates)
        self._last_normal: dict[str, tuple[WaybillPlan, int]] = {}
        sizes = group_sizes(detection)
        members = sum(options.counts.get(t, 0) * sizes[t] for t in GROUP_TYPES)
        self.regular = options.waybills - members
        injected = sum(options.counts.get(t, 0) for t in WAYBILL_TYPES)
        if self.regular < injected:
            raise ValueError(
                f"{options.waybills} waybills cannot hold {injected} injected waybills plus "
                f"{members} for group anomalies; raise --waybills or lower the rates/counts"
            )
        self.days = options.days or min(14, max(6, math.ceil(self.regular / 4000)))
        picked = self.rng.sample(range(self.regular), injected)
        self._assigned: dict[int, str] = {}
        for kind in WAYBILL_TYPES:
            for _ in range(options.counts.get(kind, 0)):
                self._assigned[picked.pop()] = kind
        self._midnight = local_midnight(options.start_ms)
        self._groups()
        if self.regular:
            self._push("spawn", self._ship_time(0), 0)

    # -- set-up -------------------------------------------------------------------------
    def _push(self, heap: str, at: int, *item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heaps[heap], (at, self._seq, *item))

    def new_plan(self, courier: str) -> WaybillPlan:
        self._serial += 1
        spec = COURIERS[courier]
        number = f"{spec.prefix}{self._number_base + self._serial:0{spec.digits}d}"
        merchant = f"shop-{self.rng.randrange(1, 41):02d}"
        self.stats.waybills += 1
        return WaybillPlan(number, courier, merchant, f"O-{self._serial:08d}", "102")

    def _schedule(self, plan: WaybillPlan) -> None:
        # A late snapshot could carry a trigger scan together with the scan that resolves it
        # (one update): keep those in order for injected waybills.
        dup = self.o.duplicate_rate if plan.retries else 0.0
        late = self.o.late_rate if plan.retries and plan.normal else 0.0
        planned = plan_pushes(
            self.rng, plan.scans, duplicate_rate=dup, late_rate=late, first_delay=plan.first_delay
        )
        plan.pushes = sorted(plan.pushes + planned, key=lambda p: p.at)
        for push in plan.pushes:
            self._push(plan.courier, push.at, plan, push)
        for order in plan.orders:
            self._push("merchant", order.at, plan, order)
        self.labels.extend(plan.labels)

    def _groups(self) -> None:
        """Place group anomalies from day 1 (silences) and day 5 (bulk, spikes) on."""
        groups = Groups(self.planner, self.stalls, self.new_plan)
        busiest = sorted(self.o.couriers, key=lambda c: -COURIERS[c].weight)
        n = len(busiest)
        for j in range(self.o.counts.get("feed_silence", 0)):
            quiet_from = self._midnight + (1 + j) * DAY + 11 * HOUR
            plans, label, silence = groups.feed_silence(
                busiest[j % n], quiet_from + self.planner.span(0, 4 * HOUR)
            )
            self.silences.append(silence)
            self._add_group(plans, [label])
        for j in range(self.o.counts.get("bulk_signing", 0)):
            plans, label = groups.bulk_signing(busiest[(j + 1) % n], self._midnight + (5 + j) * DAY)
            self._add_group(plans, [label])
        for j in range(self.o.counts.get("site_stall_spike", 0)):
            start = self._midnight + (5 + j) * DAY + HOUR
            plans, labels = groups.site_stall_spike(busiest[(j + 2) % n], start)
            self._add_group(plans, labels)

    def _add_group(self, plans: list[WaybillPlan], labels: list[Label]) -> None:
        for plan in plans:
            self._schedule(plan)
        self.labels.extend(labels)

    def _ship_time(self, index: int) -> int:
        """Increasing ship times over ``days``, shaped by the merchants' working hours."""
        position = (index + self.rng.random()) * self.days / self.regular
        return max(self.o.start_ms, self._midnight + shipping_offset(position))

    def _spawn(self) -> None:
        at, _, index = heapq.heappop(self._heaps["spawn"])
        if index + 1 < self.regular:
            self._push("spawn", self._ship_time(index + 1), index + 1)
        plan = self.new_plan(self.rng.choices(self.o.couriers, self._weights)[0])
        kind = self._assigned.get(index)
        if kind is None:
            if self.rng.random() < self.o.share_101:
                plan.request_type = "101"
            self.planner.normal(plan, at)
        else:
            self.scenarios.build[kind](plan, at)
        self._schedule(plan)

    # -- the run ------------------------------------------------------------------------
    def envelopes(self) -> Iterator[Envelope]:
        """Every envelope of the run, ``received_at`` non-decreasing."""
        while True:
            best: str | None = None
            for name, heap in self._heaps.items():
                if heap and (best is None or heap[0][:2] < self._heaps[best][0][:2]):
                    best = name
            if best is None:
                break
            if best == "spawn":
                self._spawn()
                continue
            envelope = self._merchant() if best == "merchant" else self._kdniao(best)
            if envelope is not None:
                yield envelope
        closing = self._closing()
        if closing is not None:
            yield closing
        self.labels.sort(key=lambda lb: (lb.trigger_at, lb.type, lb.subject))

    def _held(self, courier: str, at: int) -> Silence | None:
        for silence in self.silences:
            if silence.courier == courier and silence.start <= at < silence.end:
                return silence
        return None

    def _hold(self, heap: str, silence: Silence, at: int, item: tuple[Any, ...]) -> None:
        """Release a held item just after the silence, keeping the original order."""
        offset = (at - silence.start) * BATCH_SPAN // (silence.end - silence.start)
        self._push(heap, silence.end + offset, *item)

    def _stamp(self, envelope: Envelope) -> Envelope:
        self.stats.envelopes += 1
        if self.stats.first_at is None:
            self.stats.first_at = envelope.received_at
        self.stats.last_at = envelope.received_at
        return envelope

    def _kdniao(self, courier: str) -> Envelope | None:
        heap = self._heaps[courier]
        at, _, plan, push = heapq.heappop(heap)
        silence = self._held(courier, at)
        if silence is not None:
            self._hold(courier, silence, at, (plan, push))
            return None
        items: list[tuple[WaybillPlan, PushSpec]] = [(plan, push)]
        if self.rng.random() < self.o.batch_rate:
            limit, first = self.rng.randint(2, 8), at
            while heap and len(items) < limit:
                nat, _, nplan, npush = heap[0]
                if (
                    nat > first + BATCH_SPAN
                    or nplan.request_type != plan.request_type
                    or any(p.waybill == nplan.waybill for p, _ in items)
                    or self._held(courier, nat) is not None
                ):
                    break
                heapq.heappop(heap)
                items.append((nplan, npush))
                at = nat
        return self._stamp(self._emit_push(courier, items, at))

    def _emit_push(
        self, courier: str, items: list[tuple[WaybillPlan, PushSpec]], at: int
    ) -> Envelope:
        at = self.clock = max(at, self.clock)
        body = kdniao_push(
            [(p, s.count, s.alert) for p, s in items],
            at,
            ebusiness_id=self.o.ebusiness_id,
            app_key=self.o.kdniao_app_key,
        )
        envelope = kdniao_envelope(body, at)
        envelope.updates = [courier] * len(items)
        envelope.scans = sum(s.count for _, s in items)
        self.stats.kdniao_pushes += 1
        self.stats.waybill_updates += len(items)
        self.stats.scans += envelope.scans
        self.stats.multi_waybill_pushes += len(items) > 1
        for plan, spec in items:
            self.stats.kinds[spec.kind] = self.stats.kinds.get(spec.kind, 0) + 1
            if plan.normal and spec.count:
                self._last_normal[courier] = (plan, spec.count)
        self._guard(courier, at, items)
        return envelope

    def _guard(self, courier: str, at: int, items: list[tuple[WaybillPlan, PushSpec]]) -> None:
        """Re-push a snapshot when a busy courier would otherwise go quiet by accident.

        Fillers alone never keep the guard going: it needs a real update in the look-back, so
        it stops one look-back after the courier's real traffic ends (then only fillers, at
        most ``lookback / (quiet / 2) + 1``, are counted; ``guard_on`` requires that to be
        below the detector's ``min_updates``).
        """
        if not self._guard_on:
            return
        lookback = (self.d.feed_silence_lookback_minutes + 1) * MINUTE
        recent, real = self._recent[courier], self._real[courier]
        recent.extend([at] * len(items))
        real.extend(at for _, spec in items if spec.kind != "filler")
        for window in (recent, real):
            while window and window[0] <= at - lookback:
                window.popleft()
        if not real or len(recent) < math.ceil(0.6 * self.d.feed_silence_min_updates):
            return
        quiet = self.d.feed_silence_quiet_minutes * MINUTE
        filler_at = at + quiet // 2
        last = self._last_normal.get(courier)
        if last is None or any(
            s.courier == courier and at < s.end and s.start <= filler_at for s in self.silences
        ):
            return
        heap = self._heaps[courier]
        if heap and heap[0][0] <= at + quiet * 2 // 3:
            return
        self._push(courier, filler_at, last[0], PushSpec(filler_at, last[1], kind="filler"))

    def _merchant(self) -> Envelope | None:
        heap = self._heaps["merchant"]
        at, _, plan, order = heapq.heappop(heap)
        silence = self._held(plan.courier, at)
        if silence is not None:
            self._hold("merchant", silence, at, (plan, order))
            return None
        events = [order_json(plan, order)]
        if self.rng.random() < self.o.batch_rate / 2:
            first = at
            while heap and len(events) < 5:
                nat, _, nplan, norder = heap[0]
                if nat > first + MINUTE or self._held(nplan.courier, nat) is not None:
                    break
                heapq.heappop(heap)
                events.append(order_json(nplan, norder))
                at = nat
        at = self.clock = max(at, self.clock)
        self.stats.merchant_envelopes += 1
        self.stats.order_events += len(events)
        return self._stamp(merchant_envelope(events, at, self.o.merchant_secret))

    def _closing(self) -> Envelope | None:
        """A last duplicate push after every injected deadline, so replay's clock passes it."""
        due = max((label.trigger_at for label in self.labels), default=-INF) + HOUR
        if due <= self.clock:
            return None
        for courier in self.o.couriers:
            last = self._last_normal.get(courier)
            if last is not None:
                push = PushSpec(due, last[1], kind="closing")
                return self._stamp(self._emit_push(courier, [(last[0], push)], due))
        return None
