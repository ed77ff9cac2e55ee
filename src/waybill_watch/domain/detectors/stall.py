"""Waiting too long: ``transit_stall`` and ``locker_uncollected`` (deadline detectors).

``transit_stall``: the latest scan (event time) is ``picked_up``/``in_transit`` and
``transit_stall_hours`` pass with no newer scan (reason ``transit``), or it is
``out_for_delivery`` and ``last_mile_stall_hours`` pass (``last_mile``); or the courier reports
"no update" itself (``courier_reported``, Kdniao 403) and no scan was received after that
alert. Any newer scan resolves it. Key: the event id of the latest scan (``-`` if none); the
episode remembers that scan's site for ``site_stall_spike``.

``locker_uncollected``: the latest scan is ``available_for_pickup`` and
``locker_uncollected_hours`` pass with no ``receipt_confirmed`` (``uncollected``), or the courier
says so (``courier_reported``, Kdniao 412). A ``delivered`` scan newer than that pickup scan, or
any ``receipt_confirmed``, resolves it. Key: the event id of that pickup scan (``-`` if none).
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.clock import hours_ms
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Desired, Verdict
from waybill_watch.domain.state import NO_KEY, Episode, ScanRecord, WaybillState
from waybill_watch.domain.types import CourierAlertKind, Status

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_AVAILABLE_FOR_PICKUP = Status.AVAILABLE_FOR_PICKUP
_DELIVERED = Status.DELIVERED
_LOCKER_UNCOLLECTED = CourierAlertKind.LOCKER_UNCOLLECTED
_OUT_FOR_DELIVERY = Status.OUT_FOR_DELIVERY
_TRANSIT_STALL = CourierAlertKind.TRANSIT_STALL

TRANSIT = frozenset({Status.PICKED_UP, Status.IN_TRANSIT})
FINISHED = frozenset({Status.DELIVERED, Status.RETURNED})


class TransitStall(Detector):
    """No new scan for too long while the parcel is moving."""

    type = "transit_stall"
    reasons = ("transit", "last_mile", "courier_reported")

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        latest = state.latest_scan
        key = latest.event_id if latest is not None else NO_KEY
        verdict = Verdict()
        if episode is not None and episode.key != key and latest is not None:
            newer = latest
            verdict.resolved_by = lambda: {"resolved_by": self.scan(newer)}
        reasons: list[str] = []
        rule = self._rule(latest)
        hours = rule[0] if rule is not None else None
        if latest is not None and rule is not None:
            due = latest.t + hours_ms(rule[0])
            if now >= due:
                reasons.append(rule[1])
            else:
                verdict.due = due
        alert = state.alerts.get(_TRANSIT_STALL)
        if (
            alert is not None
            and (state.last_scan_received is None or state.last_scan_received <= alert.received)
            and (latest is None or latest.status not in FINISHED)
        ):
            reasons.append("courier_reported")
        if reasons:
            site = latest.site if latest is not None else None
            verdict.desired = Desired(
                key, tuple(reasons), 1, lambda: self._evidence(state, latest, now, hours), site
            )
        return verdict

    def _rule(self, latest: ScanRecord | None) -> tuple[float, str] | None:
        """(threshold hours, reason) for the latest scan's status, None when it cannot stall."""
        if latest is None:
            return None
        if latest.status in TRANSIT:
            return self.settings.transit_stall_hours, "transit"
        if latest.status is _OUT_FOR_DELIVERY:
            return self.settings.last_mile_stall_hours, "last_mile"
        return None

    def _evidence(
        self, state: WaybillState, latest: ScanRecord | None, now: int, hours: float | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"scans": [self.scan(latest)] if latest is not None else []}
        if latest is not None:
            out["hours_since_last_scan"] = round((now - latest.t) / 3_600_000, 2)
        if hours is not None:
            out["threshold_hours"] = hours
        alert = state.alerts.get(_TRANSIT_STALL)
        if alert is not None:
            out["alerts"] = [self.alert(alert)]
        return out


class LockerUncollected(Detector):
    """A parcel waiting in a locker or station nobody collects."""

    type = "locker_uncollected"
    reasons = ("uncollected", "courier_reported")

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        pickups = [r for r in state.scans if r.status is _AVAILABLE_FOR_PICKUP]
        pickup = pickups[-1] if pickups else None
        if episode is None and pickup is None and _LOCKER_UNCOLLECTED not in state.alerts:
            return Verdict()  # nothing to resolve, wait for or report
        receipts = state.facts("receipt_confirmed")
        key = pickup.event_id if pickup is not None else NO_KEY
        verdict = Verdict()
        if episode is not None:
            anchor = next((r for r in pickups if r.event_id == episode.key), None)
            collected = self._collected(state, anchor)
            if receipts or collected is not None:
                proof = self.order_event(receipts[-1]) if receipts else None
                scan = self.scan(collected) if collected is not None else None
                verdict.resolved_by = lambda: {"resolved_by": scan or proof}
                if receipts:
                    return verdict
        if receipts:
            return verdict
        reasons: list[str] = []
        if pickup is not None and state.latest_scan is pickup:
            due = pickup.t + hours_ms(self.settings.locker_uncollected_hours)
            if now >= due:
                reasons.append("uncollected")
            else:
                verdict.due = due
        alert = state.alerts.get(_LOCKER_UNCOLLECTED)
        if alert is not None and self._collected(state, pickup) is None:
            reasons.append("courier_reported")
        if reasons:
            verdict.desired = Desired(
                key, tuple(reasons), 1, lambda: self._evidence(state, pickup, now)
            )
        return verdict

    @staticmethod
    def _collected(state: WaybillState, pickup: ScanRecord | None) -> ScanRecord | None:
        """The first ``delivered`` scan newer than ``pickup`` (any, when no pickup is known)."""
        for record in state.scans:
            if record.status is _DELIVERED and (pickup is None or record.order > pickup.order):
                return record
        return None

    def _evidence(self, state: WaybillState, pickup: ScanRecord | None, now: int) -> dict[str, Any]:
        out: dict[str, Any] = {"scans": [self.scan(pickup)] if pickup is not None else []}
        if pickup is not None:
            out["hours_waiting"] = round((now - pickup.t) / 3_600_000, 2)
        out["threshold_hours"] = self.settings.locker_uncollected_hours
        alert = state.alerts.get(_LOCKER_UNCOLLECTED)
        if alert is not None:
            out["alerts"] = [self.alert(alert)]
        return out
