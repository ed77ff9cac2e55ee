"""``site_stall_spike`` (site scope): many parcels stalled at the same site at once.

The waybill engine signals ``stall_opened``/``stall_resolved`` for each ``transit_stall``
episode whose last scan names a site. Opens when ``site_stall_open_threshold`` such stalls are
open at once at the same ``courier:site`` (reason ``stalls_open``); each further stall while open
emits ``updated`` (each is a new trigger, even while others resolve: the support is the count it
opened with plus one per further stall); resolves when fewer than
``site_stall_resolve_below`` remain open.
Key: the site's episode number (1, 2, ...), kept in the site state.
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.aggregate_state import SiteState
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import NOTHING, Desired, Verdict
from waybill_watch.domain.signals import Signal, SignalKind

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_STALL_OPENED = SignalKind.STALL_OPENED

LISTED_WAYBILLS = 200


class SiteStallSpike(Detector):
    """Counts open stalls per site."""

    type = "site_stall_spike"
    reasons = ("stalls_open",)
    kinds = frozenset({SignalKind.STALL_OPENED, SignalKind.STALL_RESOLVED})

    def on_signal(self, state: SiteState, signal: Signal, now: int) -> Verdict:
        waybill = signal.waybill
        if waybill is None:
            return NOTHING
        opened = signal.kind is _STALL_OPENED
        if opened == (waybill in state.stalls):
            return NOTHING  # a repeated signal
        if opened:
            state.stalls.add(waybill)
        else:
            state.stalls.discard(waybill)
        count = len(state.stalls)
        episode = state.episodes.get(self.type)
        verdict = Verdict()
        if not opened:
            if episode is not None and count < self.settings.site_stall_resolve_below:
                verdict.resolved_by = lambda: self._evidence(state, count)
        elif episode is not None:
            # A new stall is a new trigger even when the count is below its peak.
            verdict.desired = Desired(
                episode.key, self.reasons, episode.support + 1, lambda: self._evidence(state, count)
            )
        elif count >= self.settings.site_stall_open_threshold:
            state.spikes += 1  # no episode is open: this verdict opens episode number ``spikes``
            verdict.desired = Desired(
                str(state.spikes), self.reasons, count, lambda: self._evidence(state, count)
            )
        return verdict

    def on_due(self, state: SiteState, now: int) -> Verdict:
        return NOTHING  # no deadlines: only signals change it

    def _evidence(self, state: SiteState, count: int) -> dict[str, Any]:
        return {
            "site": state.site,
            "open_stalls": count,
            "threshold": self.settings.site_stall_open_threshold,
            "resolve_below": self.settings.site_stall_resolve_below,
            "waybills": sorted(state.stalls)[:LISTED_WAYBILLS],
        }
