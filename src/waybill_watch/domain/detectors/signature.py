"""Signing problems: ``suspicious_signature`` and ``signed_not_received``.

Both are closed by the buyer's ``receipt_confirmed``; both use as key the latest receipt
confirmation before the facts that triggered them (``-`` when none), which only moves forward.

``suspicious_signature`` looks at every ``delivered`` scan newer than the latest receipt
confirmation: ``no_delivery_scan`` (no earlier ``out_for_delivery``/``available_for_pickup``),
``city_mismatch`` (scan city differs from the order's destination city, both known),
``odd_hours`` (local hour in ``[odd_hours_start, odd_hours_end)``). A later fact that removes a
reason (an earlier hand-over scan arriving late) never retracts the open episode.

``signed_not_received`` opens for each ``not_received_reported`` newer than the latest receipt
confirmation whose waybill was signed at the time of the report (the latest scan up to the
report's ``occurred_at`` is ``delivered``), so a delivered scan that arrives after the report
but happened before it still opens it. Each further report is an update. Actions follow the
escalation ladder from the open.

Both are event-triggered: a push's new scans are seen one at a time (two suspicious signings in
one push open and then update; a known complaint opens on a signing dated before it even if a
later scan of the same push, still before the complaint, shows the parcel out again). Their
resolution is an order event, never a scan, so within a push they only open or update.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from typing import Any

from waybill_watch.domain.clock import from_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import EVIDENCE_LIMIT, Detector, same_city
from waybill_watch.domain.episodes import Desired, EvidenceFn, Verdict
from waybill_watch.domain.state import NO_KEY, Episode, OrderFact, ScanRecord, WaybillState
from waybill_watch.domain.types import Status
from waybill_watch.models.anomaly import AnomalyType

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_DELIVERED = Status.DELIVERED

_COMPLAINT = "not_received_reported"
HANDOVER = frozenset({Status.OUT_FOR_DELIVERY, Status.AVAILABLE_FOR_PICKUP})


@lru_cache(maxsize=16_384)
def _local_hour(ms: int, tz: tzinfo) -> int:
    # Every evaluation re-checks the waybill's delivered scans: the same instants come back.
    return from_ms(ms, tz).hour


def _any_delivered(state: WaybillState) -> bool:
    for record in state.scans:  # noqa: SIM110 - faster than any() over a generator
        if record.status is _DELIVERED:
            return True
    return False


def _any_complaint(state: WaybillState) -> bool:
    for fact in state.orders:  # noqa: SIM110 - faster than any() over a generator
        if fact.kind == _COMPLAINT:
            return True
    return False


def _receipt_boundary(state: WaybillState) -> OrderFact | None:
    receipts = state.facts("receipt_confirmed")
    return receipts[-1] if receipts else None


def _resolution(
    detector: Detector, episode: Episode | None, boundary: OrderFact | None, key: str
) -> EvidenceFn | None:
    if episode is None or boundary is None or episode.key == key:
        return None
    return lambda: {"resolved_by": detector.order_event(boundary)}


class SuspiciousSignature(Detector):
    """A signing scan that looks like it did not happen at the door."""

    type: AnomalyType = "suspicious_signature"
    reasons: tuple[str, ...] = ("no_delivery_scan", "city_mismatch", "odd_hours")

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        if episode is None and not _any_delivered(state):
            return Verdict()  # nothing open to resolve, no signing scan to judge
        boundary = _receipt_boundary(state)
        key = boundary.ref if boundary is not None else NO_KEY
        verdict = Verdict(resolved_by=_resolution(self, episode, boundary, key))
        since = boundary.t if boundary is not None else None
        destination = state.destination_city
        handed_over = False
        flagged: list[tuple[ScanRecord, tuple[str, ...]]] = []
        for record in state.scans:
            if record.status in HANDOVER:
                handed_over = True
            if record.status is not _DELIVERED or (since is not None and record.t <= since):
                continue
            found = (
                "no_delivery_scan" if not handed_over else None,
                "city_mismatch" if same_city(record.city, destination) is False else None,
                "odd_hours" if self._odd_hour(record.t) else None,
            )
            reasons = tuple(r for r in found if r is not None)
            if reasons:
                flagged.append((record, reasons))
        if flagged:
            all_reasons = tuple(r for _, rs in flagged for r in rs)
            verdict.desired = Desired(
                key, all_reasons, len(flagged), lambda: self._evidence(flagged, destination)
            )
        return verdict

    def may_emit_early(
        self, state: WaybillState, episode: Episode | None, early: list[ScanRecord]
    ) -> bool:
        # The receipt boundary (key, resolution) is fixed during a push, and a delivered scan
        # known before the push can only lose reasons as scans are added (a hand-over before
        # it): without a new delivered scan among ``early`` no prefix flags more than before.
        for record in early:  # noqa: SIM110 - faster than any() over a generator
            if record.status is _DELIVERED:
                return True
        return False

    def _odd_hour(self, ms: int) -> bool:
        hour = _local_hour(ms, self.tz)
        start, end = self.settings.odd_hours_start, self.settings.odd_hours_end
        return start <= hour < end if start < end else hour >= start or hour < end

    def _evidence(
        self, flagged: list[tuple[ScanRecord, tuple[str, ...]]], destination: str | None
    ) -> dict[str, Any]:
        shown = flagged[-EVIDENCE_LIMIT:]
        return {
            "scans": [{**self.scan(r), "reasons": list(rs)} for r, rs in shown],
            "destination_city": destination,
            "local_timezone": self.settings.local_timezone,
        }


class SignedNotReceived(Detector):
    """The courier says signed, the buyer says not received."""

    type: AnomalyType = "signed_not_received"
    reasons: tuple[str, ...] = ("not_received_reported",)

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        s = self.settings
        self.ladder = (
            ("contact_recipient", s.action_contact_recipient_hours),
            ("request_sign_proof", s.action_request_sign_proof_hours),
            ("escalate_platform", s.action_escalate_platform_hours),
            ("escalate_regulator", s.action_escalate_regulator_hours),
        )

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        if episode is None and not _any_complaint(state):
            return Verdict()  # nothing open to resolve, no complaint to check
        boundary = _receipt_boundary(state)
        key = boundary.ref if boundary is not None else NO_KEY
        verdict = Verdict(resolved_by=_resolution(self, episode, boundary, key))
        complaints = [
            c
            for c in state.facts(_COMPLAINT)
            if (boundary is None or c.t > boundary.t) and self._signed_at(state, c.t) is not None
        ]
        if complaints:
            signed = self._signed_at(state, complaints[-1].t)
            verdict.desired = Desired(
                key, self.reasons, len(complaints), lambda: self._evidence(complaints, signed)
            )
        return verdict

    def may_emit_early(
        self, state: WaybillState, episode: Episode | None, early: list[ScanRecord]
    ) -> bool:
        # The receipt boundary is fixed during a push; a prefix can only change which
        # complaints find the waybill signed, through a scan at or before one of them.
        latest = None
        for fact in state.orders:  # sorted by time: the last complaint is the latest
            if fact.kind == _COMPLAINT:
                latest = fact.t
        return latest is not None and bool(early) and early[0].t <= latest

    @staticmethod
    def _signed_at(state: WaybillState, at: int) -> ScanRecord | None:
        """The latest scan up to ``at`` when it is a delivery, else None."""
        latest = None
        for record in state.scans:
            if record.t > at:
                break
            latest = record
        return latest if latest is not None and latest.status is _DELIVERED else None

    def _evidence(self, complaints: list[OrderFact], signed: ScanRecord | None) -> dict[str, Any]:
        return {
            "order_events": [self.order_event(c) for c in complaints[-EVIDENCE_LIMIT:]],
            "scans": [self.scan(signed)] if signed is not None else [],
            "complaints": len(complaints),
        }
