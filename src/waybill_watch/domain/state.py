"""Per-waybill state: the facts the detectors need, bounded, kept in event-time order.

One ``WaybillState`` is stored per waybill (a Faust table value in the worker, millions of them),
so it keeps compact records, not the wire models:

* ``scans``: scan summaries sorted by ``(event_time, lifecycle rank, event_id)`` whatever order
  they arrived in; at most ``MAX_SCANS`` (routine transport scans are dropped first, oldest
  first, so milestones such as ``delivered`` survive); courier text is kept (masked, truncated)
  only for statuses whose text is evidence (exceptions, deliveries, lockers).
* ``evicted``: short hashes of dropped scans' event ids, so a re-push of a dropped scan is
  still recognised as a duplicate.
* ``orders``: merchant order facts (deduplicated by a hash of their content).
* ``alerts``: the latest courier alert per kind.
* ``episodes``: the open episode per anomaly type (see ``episodes.py``).
* ``next_due``: the earliest deadline of any detector, or the retirement (epoch ms).
* ``retired``: set once the waybill was retired (see ``retire``): ``(horizon, retired_at)``.

Serialisation (``to_bytes``/``from_bytes``, layouts in ``state_codec``): a version byte
(``STATE_VERSION`` 2), the event ids and order refs as 16 binary bytes each and the evicted refs
as 8, then one orjson list: each distinct site, city and order string once, instants as offsets
from the first scan, scans column by column. About 750 bytes for a delivered 10-scan waybill
(v1, orjson lists of the records, took 1,340); a retirement marker about 100. States stored by
v1 still load (and are written back as v2).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from waybill_watch.domain import state_codec
from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.records import (
    NO_KEY,
    ORDER_KINDS,
    RANK,
    ROUTINE,
    STATUS_CODES,
    AlertFact,
    Episode,
    OrderFact,
    ScanRecord,
    short_ref,
)
from waybill_watch.domain.types import CourierAlert, CourierAlertKind, Scan
from waybill_watch.models.order import OrderEvent

STATE_VERSION = state_codec.VERSION
MAX_SCANS = 64
MAX_EVICTED = 512
MAX_ORDER_FACTS = 32

__all__ = [
    "MAX_EVICTED",
    "MAX_ORDER_FACTS",
    "MAX_SCANS",
    "NO_KEY",
    "RANK",
    "STATE_VERSION",
    "STATUS_CODES",
    "AlertFact",
    "Episode",
    "OrderFact",
    "ScanRecord",
    "WaybillState",
]


def _by_order(record: ScanRecord) -> tuple[int, int, str]:
    return record.order


def _fresh_order(item: tuple[ScanRecord, Scan]) -> tuple[int, int, str]:
    return item[0].order


@dataclass(slots=True)
class WaybillState:
    """Everything kept about one waybill between events."""

    waybill: str
    courier: str | None = None
    merchant_hint: str | None = None  # from the courier push, when orders name none
    scans: list[ScanRecord] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)  # sorted short refs
    orders: list[OrderFact] = field(default_factory=list)  # sorted by (t, ref)
    alerts: dict[CourierAlertKind, AlertFact] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    next_due: int | None = None  # epoch ms
    last_scan_received: int | None = None  # epoch ms, when a not-seen-before scan last arrived
    retired: tuple[int, int] | None = None  # (horizon, retired_at), epoch ms; see ``retire``

    # -- applying facts -------------------------------------------------------------------

    def add_scans(self, scans: list[Scan]) -> list[tuple[ScanRecord, Scan]]:
        """Insert the scans not seen before; return them (record, scan) in event-time order."""
        kept = self.scans
        seen = {r.event_id for r in kept}
        fresh: list[tuple[ScanRecord, Scan]] = []
        horizon = self.retired[0] if self.retired is not None else None
        for scan in scans:
            if scan.event_id in seen or (self.evicted and self._was_evicted(scan.event_id)):
                continue
            if horizon is not None and to_ms(scan.event_time) <= horizon:
                continue  # history forgotten at retirement: known, not new
            seen.add(scan.event_id)
            record = ScanRecord.from_scan(scan)
            order = record.order
            if not kept or kept[-1].order <= order:
                kept.append(record)  # the usual case: the newest scan (what insort does)
            else:
                bisect.insort(kept, record, key=_by_order)
            fresh.append((record, scan))
            received = to_ms(scan.received_at)
            if self.last_scan_received is None or received > self.last_scan_received:
                self.last_scan_received = received
        while len(kept) > MAX_SCANS:
            self._evict_one()
        if len(fresh) > 1:
            fresh.sort(key=_fresh_order)
        return fresh

    def known_ids(self) -> Callable[[str], bool]:
        """A test for the event ids ``add_scans`` would skip: scans kept or evicted.

        Lets a caller holding a whole-trace push build only the scans this waybill lacks.
        """
        kept = {r.event_id for r in self.scans}
        if not self.evicted:
            return kept.__contains__

        def known(event_id: str) -> bool:
            return event_id in kept or self._was_evicted(event_id)

        return known

    def add_order(self, event: OrderEvent) -> OrderFact | None:
        """Record an order event; ``None`` when the same event was seen before."""
        fact = OrderFact.from_event(event)
        if self.retired is not None and fact.t <= self.retired[0]:
            return None
        if any(f.ref == fact.ref for f in self.orders):
            return None
        bisect.insort(self.orders, fact, key=lambda f: f.order)
        if len(self.orders) > MAX_ORDER_FACTS:
            # Keep every kind represented: drop the oldest fact of the most frequent kind.
            counts = {k: sum(1 for f in self.orders if f.kind == k) for k in ORDER_KINDS}
            crowded = max(ORDER_KINDS, key=lambda k: counts[k])
            self.orders.remove(next(f for f in self.orders if f.kind == crowded))
        if self.courier is None and event.courier:
            self.courier = event.courier
        return fact

    def add_alert(self, alert: CourierAlert) -> bool:
        """Keep the latest alert per kind; ``True`` when it changed what is known."""
        fact = AlertFact.from_alert(alert)
        if self.retired is not None and fact.reported <= self.retired[0]:
            return False
        current = self.alerts.get(fact.kind)
        if current is not None and (current.received, current.reported) >= (
            fact.received,
            fact.reported,
        ):
            return False
        self.alerts[fact.kind] = fact
        return True

    def _was_evicted(self, event_id: str) -> bool:
        if not self.evicted:
            return False
        ref = short_ref(event_id)
        i = bisect.bisect_left(self.evicted, ref)
        return i < len(self.evicted) and self.evicted[i] == ref

    def _evict_one(self) -> None:
        victim = min(self.scans, key=lambda r: (r.status not in ROUTINE, r.order))
        self.scans.remove(victim)
        bisect.insort(self.evicted, short_ref(victim.event_id))
        if len(self.evicted) > MAX_EVICTED:
            del self.evicted[0]

    # -- retirement -----------------------------------------------------------------------

    @property
    def is_marker(self) -> bool:
        """A retired waybill with no fact since: only its horizon is left."""
        return self.retired is not None and not (self.scans or self.orders or self.alerts)

    def last_activity(self) -> int | None:
        """When the latest fact arrived (epoch ms): scans and alerts by receipt, orders by
        ``occurred_at`` (their receipt is not kept). ``None`` when there is no fact."""
        times = [f.t for f in self.orders[-1:]]  # sorted by time: the last is the latest
        times += [a.received for a in self.alerts.values()]
        if self.last_scan_received is not None:
            times.append(self.last_scan_received)
        return max(times) if times else None

    def horizon(self) -> int | None:
        """The latest event time of any fact kept (epoch ms), or the previous horizon."""
        times = [r.t for r in self.scans[-1:]] + [f.t for f in self.orders[-1:]]
        times += [a.reported for a in self.alerts.values()]
        if self.retired is not None:
            times.append(self.retired[0])
        return max(times) if times else None

    def retire(self, now_ms: int) -> WaybillState:
        """The compact marker that replaces this state once the waybill went quiet.

        It keeps identity (courier, merchant) and the horizon: facts dated at or before the
        latest fact known are then ignored, so a courier re-sending an old whole trace does not
        rebuild the history and re-open episodes already reported; a newer fact starts the
        waybill afresh from that fact on.
        """
        horizon = self.horizon()
        return WaybillState(
            self.waybill,
            self.courier,
            merchant_hint=self.merchant,
            retired=(horizon if horizon is not None else now_ms, now_ms),
        )

    # -- derived facts --------------------------------------------------------------------

    @property
    def latest_scan(self) -> ScanRecord | None:
        return self.scans[-1] if self.scans else None

    def facts(self, kind: str) -> list[OrderFact]:
        """Order facts of one kind, oldest first."""
        if not self.orders:
            return []
        return [f for f in self.orders if f.kind == kind]

    @property
    def merchant(self) -> str | None:
        """The merchant named by the latest order event that names one."""
        for fact in reversed(self.orders):
            if fact.merchant:
                return fact.merchant
        return self.merchant_hint

    @property
    def promise(self) -> int | None:
        """``promised_delivery_at`` of the latest shipped event that states one."""
        for fact in reversed(self.orders):
            if fact.kind == "shipped" and fact.promise is not None:
                return fact.promise
        return None

    @property
    def destination_city(self) -> str | None:
        """Destination city of the latest shipped event that states one."""
        for fact in reversed(self.orders):
            if fact.kind == "shipped" and fact.city:
                return fact.city
        return None

    # -- serialisation --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The stored form (layout ``STATE_VERSION``, see ``state_codec``)."""
        return state_codec.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> WaybillState:
        """A state stored by this or an earlier layout (v1 still loads)."""
        return state_codec.decode(cls, data)
