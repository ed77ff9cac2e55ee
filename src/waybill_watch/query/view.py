"""What a query shows of one waybill: latest status, the masked timeline, open episodes.

Pure: a ``WaybillState`` in, a JSON-ready dict out. Personal data was masked before the state
was ever stored (``ScanRecord.from_scan``); the evidence formatters of the detectors render
the scans and order events exactly as anomaly evidence does.
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.clock import from_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import SPECS
from waybill_watch.domain.ids import anomaly_id
from waybill_watch.domain.state import WaybillState
from waybill_watch.timefmt import format_rfc3339


class WaybillView:
    """Renders states for the query API (times in the detection settings' local zone)."""

    def __init__(self, settings: DetectionSettings) -> None:
        self._format = Detector(settings)

    def render(self, state: WaybillState) -> dict[str, Any]:
        """The answer for one known waybill."""
        fmt = self._format
        latest = state.latest_scan
        if state.is_marker:
            retired = state.retired
            return {
                "waybill": state.waybill,
                "courier": state.courier,
                "merchant": state.merchant,
                "retired": True,
                "retired_at": fmt.time(retired[1]) if retired else None,
                "latest_status": None,
                "scans": [],
                "order_events": [],
                "open_episodes": [],
            }
        return {
            "waybill": state.waybill,
            "courier": state.courier,
            "merchant": state.merchant,
            "retired": False,
            "latest_status": str(latest.status) if latest else None,
            "latest_scan_at": fmt.time(latest.t) if latest else None,
            "scans": [fmt.scan(r) for r in state.scans],
            "order_events": [fmt.order_event(f) for f in state.orders],
            "open_episodes": [
                {
                    "type": kind,
                    "anomaly_id": anomaly_id(kind, state.waybill, episode.key),
                    "severity": SPECS[kind].severity,  # type: ignore[index]
                    "opened_at": format_rfc3339(from_ms(episode.opened, fmt.tz)),
                    "reasons": list(episode.reasons),
                }
                for kind, episode in sorted(state.episodes.items())
            ],
        }
