"""The detector registry: every anomaly type of contract §6, one module per family.

Waybill detectors run in this order on every evaluation (it fixes the emission order of events
caused by the same fact). The event-triggered ones (``EventDetector``: the first four) also see
a push's new scans one at a time (see ``engine.py``). Site and courier detectors consume
signals (see ``signals.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from waybill_watch.domain.aggregate_state import CourierState, SiteState
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import AggregateDetector, EventDetector, WaybillDetector
from waybill_watch.domain.detectors.bulk import BulkSigning
from waybill_watch.domain.detectors.exceptions import DeliveryException
from waybill_watch.domain.detectors.promises import DeliveryOverdue, NoFirstScan
from waybill_watch.domain.detectors.regression import StatusRegression
from waybill_watch.domain.detectors.signature import SignedNotReceived, SuspiciousSignature
from waybill_watch.domain.detectors.silence import FeedSilence
from waybill_watch.domain.detectors.spike import SiteStallSpike
from waybill_watch.domain.detectors.stall import LockerUncollected, TransitStall

WAYBILL_DETECTORS: tuple[Callable[[DetectionSettings], WaybillDetector], ...] = (
    DeliveryException,
    SuspiciousSignature,
    SignedNotReceived,
    StatusRegression,
    LockerUncollected,
    TransitStall,
    NoFirstScan,
    DeliveryOverdue,
)
SITE_DETECTORS: tuple[Callable[[DetectionSettings], AggregateDetector[SiteState]], ...] = (
    BulkSigning,
    SiteStallSpike,
)
COURIER_DETECTORS: tuple[Callable[[DetectionSettings], AggregateDetector[CourierState]], ...] = (
    FeedSilence,
)


def build_waybill_detectors(settings: DetectionSettings) -> list[WaybillDetector]:
    """One configured instance of every waybill detector, in registry order."""
    return [factory(settings) for factory in WAYBILL_DETECTORS]


def build_site_detectors(settings: DetectionSettings) -> list[AggregateDetector[SiteState]]:
    """The ``courier:site`` scope detectors."""
    return [factory(settings) for factory in SITE_DETECTORS]


def build_courier_detectors(
    settings: DetectionSettings,
) -> list[AggregateDetector[CourierState]]:
    """The courier scope detectors."""
    return [factory(settings) for factory in COURIER_DETECTORS]


__all__ = [
    "COURIER_DETECTORS",
    "SITE_DETECTORS",
    "WAYBILL_DETECTORS",
    "AggregateDetector",
    "EventDetector",
    "WaybillDetector",
    "build_courier_detectors",
    "build_site_detectors",
    "build_waybill_detectors",
]
