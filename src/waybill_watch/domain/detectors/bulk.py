"""``bulk_signing`` (site scope): many parcels "signed by the recipient" at once at one site.

Opens as soon as ``bulk_signing_threshold`` distinct waybills are signed (``delivered``,
``sign_type`` ``recipient``) at the same ``courier:site`` within one epoch-aligned tumbling window
of ``bulk_signing_window_minutes`` of *event time*; every further waybill in that window emits
``updated``. One episode per window, never resolved. Key: the window start (UTC, RFC 3339).

Windows live in our own state (not Faust windows: those close on wall-clock time and lose
windows across restarts). A window is dropped ``bulk_signing_late_hours`` after its end; a
signature for a window already dropped is ignored (counted by nobody, documented).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from waybill_watch.domain.aggregate_state import SiteState
from waybill_watch.domain.clock import MINUTE_MS, from_ms, hours_ms, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Subject, make_event
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.models.anomaly import AnomalyEvent, AnomalyStatus

#: At most this many waybills are listed in one event (``count`` always has the total).
LISTED_WAYBILLS = 200


class BulkSigning(Detector):
    """Distinct recipient signatures per site and event-time window."""

    type = "bulk_signing"
    reasons = ("recipient_signatures",)
    kinds = frozenset({SignalKind.RECIPIENT_SIGNED})

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        self.size = settings.bulk_signing_window_minutes * MINUTE_MS
        self.keep = self.size + hours_ms(settings.bulk_signing_late_hours)

    def on_signal(self, state: SiteState, signal: Signal, now: datetime) -> list[AnomalyEvent]:
        if signal.waybill is None:
            return []
        t = to_ms(signal.at)
        start = t - t % self.size
        if start + self.keep <= to_ms(now):
            return []  # the window was already dropped
        waybills = state.windows.setdefault(start, set())
        if signal.waybill in waybills:
            return []
        waybills.add(signal.waybill)
        if len(waybills) < self.settings.bulk_signing_threshold:
            return []
        status: AnomalyStatus = "updated" if start in state.opened else "open"
        state.opened.add(start)
        key = from_ms(start, UTC).isoformat()
        subject = Subject(state.subject, courier=state.courier)
        evidence = self._evidence(state, start, waybills)
        return [make_event(self.type, status, subject, key, list(self.reasons), now, evidence)]

    def on_due(self, state: SiteState, now: datetime) -> list[AnomalyEvent]:
        horizon = to_ms(now) - self.keep
        for start in [s for s in state.windows if s <= horizon]:
            del state.windows[start]
            state.opened.discard(start)
        return []

    def due(self, state: SiteState) -> int | None:
        return min(state.windows) + self.keep if state.windows else None

    def _evidence(self, state: SiteState, start: int, waybills: set[str]) -> dict[str, Any]:
        listed = sorted(waybills)
        return {
            "site": state.site,
            "window_start": self.time(start),
            "window_end": self.time(start + self.size),
            "count": len(listed),
            "threshold": self.settings.bulk_signing_threshold,
            "waybills": listed[:LISTED_WAYBILLS],
        }
