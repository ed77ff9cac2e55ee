"""``status_regression``: a parcel going backwards.

* ``after_delivery``: a ``picked_up``/``in_transit``/``out_for_delivery`` scan newer than the
  latest ``delivered`` scan. A later ``delivered`` resolves it.
* ``site_loop``: an ``in_transit`` scan at a site the parcel had already left for another site
  (route of ``picked_up``/``in_transit`` scans with a site, in event-time order, up to the first
  ``returning``/``rejected`` scan: a parcel on its way back legitimately revisits hubs). Never
  resolves, so an episode that carries ``site_loop`` stays open.

Key: the latest ``delivered`` scan's event id when ``after_delivery`` opens it, else ``loop``
(a loop episode never resolves, so that key is used at most once per waybill).

Event-triggered: a push's new scans are seen one at a time, so "signed, out for delivery again,
signed again" in one push opens ``after_delivery`` and then resolves it. A prefix of the push
can only regress where the whole history has a ``delivered`` scan before a regressing one, one
of them new, and can only loop where the whole route comes back to a site it left.
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Desired, Verdict
from waybill_watch.domain.state import Episode, ScanRecord, WaybillState
from waybill_watch.domain.types import Status
from waybill_watch.models.anomaly import AnomalyType

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_DELIVERED = Status.DELIVERED
_IN_TRANSIT = Status.IN_TRANSIT

REGRESS = frozenset({Status.PICKED_UP, Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY})
ROUTE = frozenset({Status.PICKED_UP, Status.IN_TRANSIT})
ROUTE_ENDS = frozenset({Status.RETURNING, Status.REJECTED})
LOOP_KEY = "loop"


def site_loops(scans: list[ScanRecord]) -> list[ScanRecord]:
    """``in_transit`` scans at a site already left for another site."""
    loops: list[ScanRecord] = []
    left: set[str] = set()
    current: str | None = None
    for record in scans:
        if record.status in ROUTE_ENDS:
            break
        if record.status not in ROUTE or record.site is None or record.site == current:
            continue
        if record.status is _IN_TRANSIT and record.site in left:
            loops.append(record)
        if current is not None:
            left.add(current)
        current = record.site
    return loops


class StatusRegression(Detector):
    """Scans that contradict the parcel's progress."""

    type: AnomalyType = "status_regression"
    reasons: tuple[str, ...] = ("after_delivery", "site_loop")

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        delivered: ScanRecord | None = None
        after: list[ScanRecord] = []
        for record in state.scans:
            if record.status is _DELIVERED:
                delivered, after = record, []
            elif delivered is not None and record.status in REGRESS:
                after.append(record)
        loops = site_loops(state.scans)
        verdict = Verdict()
        if (
            episode is not None
            and "site_loop" not in episode.reasons
            and delivered is not None
            and episode.key != delivered.event_id
        ):
            resolver = delivered
            verdict.resolved_by = lambda: {"resolved_by": self.scan(resolver)}
        reasons = (("after_delivery",) if after else ()) + (("site_loop",) if loops else ())
        if reasons:
            key = delivered.event_id if after and delivered is not None else LOOP_KEY
            support = len(after) + len(loops)
            verdict.desired = Desired(
                key, reasons, support, lambda: self._evidence(delivered, after, loops)
            )
        return verdict

    def may_emit_early(
        self, state: WaybillState, episode: Episode | None, early: list[ScanRecord]
    ) -> bool:
        if episode is not None:
            return True  # it may resolve or grow
        regress = delivered = route = False
        for record in early:
            status = record.status
            if status is _DELIVERED:
                delivered = True
            elif status in REGRESS:
                regress = True
                route = route or (status in ROUTE and record.site is not None)
        if not (regress or delivered):
            return False  # nothing the verdict reads changed in any prefix
        # Every prefix is a subsequence of the whole history (same order). A prefix regresses
        # only if a delivered scan precedes a regressing one here, one of them new (a pair
        # known before the push was judged then), and loops only if the whole route comes
        # back to a site it left (route ends ignored: a prefix may lack one). One pass, with
        # ``early`` (a sorted sublist of the scans) walked alongside by identity.
        pending = iter(early)
        upcoming = next(pending, None)
        any_delivered = new_delivered = False
        visited: set[str] = set()
        current: str | None = None
        for record in state.scans:
            new = record is upcoming
            if new:
                upcoming = next(pending, None)
            status = record.status
            if status is _DELIVERED:
                any_delivered = True
                new_delivered = new_delivered or new
            elif status in REGRESS:
                if new_delivered or (new and any_delivered):
                    return True
                site = record.site
                if route and site is not None and site != current and status in ROUTE:
                    if site in visited:
                        return True
                    visited.add(site)
                    current = site
        return upcoming is not None  # a new scan already evicted: cannot tell, so step

    def _evidence(
        self, delivered: ScanRecord | None, after: list[ScanRecord], loops: list[ScanRecord]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if after and delivered is not None:
            out["delivered"] = self.scan(delivered)
            out["scans"] = self.scans(after)
        if loops:
            out["loop_scans"] = self.scans(loops)
        return out
