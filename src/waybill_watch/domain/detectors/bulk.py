"""``bulk_signing`` (site scope): many parcels "signed by the recipient" at once at one site.

Opens as soon as ``bulk_signing_threshold`` distinct waybills are signed (``delivered``,
``sign_type`` ``recipient``) at the same ``courier:site`` within one epoch-aligned tumbling window
of ``bulk_signing_window_minutes`` of *event time*; every further waybill in that window emits
``updated`` (the support is the window's count). One episode per window, never resolved: each
window's episode has its own slot (``window_slot``). Key: the window start (UTC, RFC 3339).

Windows live in our own state (not Faust windows: those close on wall-clock time and lose
windows across restarts). A window is dropped, with its episode, ``bulk_signing_late_hours``
after its end; a signature for a window already dropped is ignored (counted by nobody,
documented).
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.aggregate_state import BULK_REASONS, SiteState, window_key, window_slot
from waybill_watch.domain.clock import MINUTE_MS, hours_ms, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Desired, Verdict
from waybill_watch.domain.signals import Signal, SignalKind

#: At most this many waybills are listed in one event (``count`` always has the total).
LISTED_WAYBILLS = 200


class BulkSigning(Detector):
    """Distinct recipient signatures per site and event-time window."""

    type = "bulk_signing"
    reasons = BULK_REASONS
    kinds = frozenset({SignalKind.RECIPIENT_SIGNED})

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        self.size = settings.bulk_signing_window_minutes * MINUTE_MS
        self.keep = self.size + hours_ms(settings.bulk_signing_late_hours)

    def on_signal(self, state: SiteState, signal: Signal, now: int) -> Verdict:
        start = self._add(state, signal, now)
        verdict = Verdict(due=self._due(state))
        if start is None:
            return verdict
        waybills = state.windows[start]
        if len(waybills) >= self.settings.bulk_signing_threshold:
            verdict.slot = window_slot(start)
            verdict.desired = Desired(
                window_key(start),
                self.reasons,
                len(waybills),
                lambda: self._evidence(state, start, waybills),
            )
        return verdict

    def _add(self, state: SiteState, signal: Signal, now: int) -> int | None:
        """Count the signed waybill in its window; the window's start, None if not counted."""
        if signal.waybill is None:
            return None
        t = to_ms(signal.at)
        start = t - t % self.size
        if start + self.keep <= now:
            return None  # the window was already dropped
        waybills = state.windows.setdefault(start, set())
        if signal.waybill in waybills:
            return None
        waybills.add(signal.waybill)
        return start

    def on_due(self, state: SiteState, now: int) -> Verdict:
        horizon = now - self.keep
        for start in [s for s in state.windows if s <= horizon]:
            del state.windows[start]
            state.episodes.pop(window_slot(start), None)
        return Verdict(due=self._due(state))

    def _due(self, state: SiteState) -> int | None:
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
