"""Merchant promises not kept: ``no_first_scan`` and ``delivery_overdue`` (deadline detectors).

``no_first_scan``: a ``shipped`` order event and ``no_first_scan_hours`` after its
``occurred_at`` (the earliest shipped event) with no scan at all (``no_scan``), or the courier
says so (``courier_reported``, Kdniao 401) while no scan is known. The first scan resolves it.

``delivery_overdue``: ``promised_delivery_at`` (of the latest shipped event that states one)
passes and no ``delivered`` scan is known (``promise_passed``), or the courier says so
(``courier_reported``, Kdniao 402) while no ``delivered`` scan is known. A ``delivered`` scan
resolves it.

Both can happen at most once per waybill (a scan or a delivery never goes away), so their key
is a constant: the alert and our own threshold land on the same episode (``updated``).
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.clock import hours_ms
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Desired, Verdict
from waybill_watch.domain.state import Episode, WaybillState
from waybill_watch.domain.types import CourierAlertKind, Status

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_DELIVERED = Status.DELIVERED
_DELIVERY_OVERDUE = CourierAlertKind.DELIVERY_OVERDUE
_NO_FIRST_SCAN = CourierAlertKind.NO_FIRST_SCAN


class NoFirstScan(Detector):
    """Shipped on paper, never scanned by the courier."""

    type = "no_first_scan"
    reasons = ("no_scan", "courier_reported")
    KEY = "first_scan"

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        if state.scans:
            if episode is None:
                return Verdict()
            first = state.scans[0]
            return Verdict(resolved_by=lambda: {"resolved_by": self.scan(first)})
        verdict = Verdict()
        reasons: list[str] = []
        shipped = state.facts("shipped")
        if shipped:
            due = shipped[0].t + hours_ms(self.settings.no_first_scan_hours)
            if now >= due:
                reasons.append("no_scan")
            else:
                verdict.due = due
        if _NO_FIRST_SCAN in state.alerts:
            reasons.append("courier_reported")
        if reasons:
            verdict.desired = Desired(self.KEY, tuple(reasons), 1, lambda: self._evidence(state))
        return verdict

    def _evidence(self, state: WaybillState) -> dict[str, Any]:
        out: dict[str, Any] = {
            "order_events": [self.order_event(f) for f in state.facts("shipped")[:1]],
            "threshold_hours": self.settings.no_first_scan_hours,
        }
        alert = state.alerts.get(_NO_FIRST_SCAN)
        if alert is not None:
            out["alerts"] = [self.alert(alert)]
        return out


class DeliveryOverdue(Detector):
    """The promised delivery time passed without a delivery."""

    type = "delivery_overdue"
    reasons = ("promise_passed", "courier_reported")
    KEY = "overdue"

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        delivered = None
        for record in state.scans:
            if record.status is _DELIVERED:
                delivered = record
                break
        if delivered is not None:
            if episode is None:
                return Verdict()
            return Verdict(resolved_by=lambda: {"resolved_by": self.scan(delivered)})
        verdict = Verdict()
        reasons: list[str] = []
        promise = state.promise
        if promise is not None:
            if now >= promise:
                reasons.append("promise_passed")
            else:
                verdict.due = promise
        if _DELIVERY_OVERDUE in state.alerts:
            reasons.append("courier_reported")
        if reasons:
            verdict.desired = Desired(
                self.KEY, tuple(reasons), 1, lambda: self._evidence(state, promise, now)
            )
        return verdict

    def _evidence(self, state: WaybillState, promise: int | None, now: int) -> dict[str, Any]:
        shipped = [f for f in state.facts("shipped") if f.promise is not None]
        out: dict[str, Any] = {
            "order_events": [self.order_event(f) for f in shipped[-1:]],
            "scans": self.scans(state.scans[-1:]),
        }
        if promise is not None:
            out["promised_delivery_at"] = self.time(promise)
            out["hours_overdue"] = round((now - promise) / 3_600_000, 2)
        alert = state.alerts.get(_DELIVERY_OVERDUE)
        if alert is not None:
            out["alerts"] = [self.alert(alert)]
        return out
