"""``feed_silence`` (courier scope): a busy courier feed that suddenly stops.

Every waybill update (one per waybill per push) counts, by its ``received_at``, in one-minute
buckets. When the courier had at least ``feed_silence_min_updates`` updates in the
``feed_silence_lookback_minutes`` one-minute buckets ending with the minute of its latest
update, and ``feed_silence_quiet_minutes`` pass after that latest update with nothing newer,
the episode opens (reason ``no_updates``). An update received after that latest one resolves it.
Key: the latest update's ``received_at`` (epoch ms), which only moves forward.
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.aggregate_state import CourierState
from waybill_watch.domain.clock import MINUTE_MS, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import NOTHING, Desired, Verdict
from waybill_watch.domain.signals import Signal, SignalKind


class FeedSilence(Detector):
    """Updates per courier over time."""

    type = "feed_silence"
    reasons = ("no_updates",)
    kinds = frozenset({SignalKind.UPDATE_RECEIVED})

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        # The buckets before the latest update's minute that the look-back still covers.
        self._lookback_ms = (settings.feed_silence_lookback_minutes - 1) * MINUTE_MS
        self._quiet_ms = settings.feed_silence_quiet_minutes * MINUTE_MS

    def on_signal(self, state: CourierState, signal: Signal, now: int) -> Verdict:
        received = to_ms(signal.at)
        if state.last is None or received > state.last:
            state.last = received
        last_minute = state.last - state.last % MINUTE_MS
        floor = last_minute - self._lookback_ms
        minute = received - received % MINUTE_MS
        buckets = state.buckets
        if minute >= floor:
            buckets[minute] = buckets.get(minute, 0) + 1
        if min(buckets, default=floor) < floor:  # the look-back moved on (once a minute)
            for old in [m for m in buckets if m < floor]:
                del buckets[old]
        return self.on_due(state, now)

    def on_due(self, state: CourierState, now: int) -> Verdict:
        last = state.last
        if last is None:
            return NOTHING
        verdict = Verdict()
        episode = state.episodes.get(self.type)
        if episode is not None:
            if last <= int(episode.key):
                return verdict  # open until an update newer than its key
            verdict.resolved_by = lambda: {"resolved_by": {"received_at": self.time(last)}}
        count = sum(state.buckets.values())
        if count < self.settings.feed_silence_min_updates:
            return verdict
        due = last + self._quiet_ms
        if now < due:
            verdict.due = due
        else:
            verdict.desired = Desired(
                str(last), self.reasons, count, lambda: self._evidence(state, count)
            )
        return verdict

    def _evidence(self, state: CourierState, count: int) -> dict[str, Any]:
        return {
            "last_update_at": self.time(state.last),
            "updates_in_lookback": count,
            "lookback_minutes": self.settings.feed_silence_lookback_minutes,
            "quiet_minutes": self.settings.feed_silence_quiet_minutes,
            "min_updates": self.settings.feed_silence_min_updates,
        }
