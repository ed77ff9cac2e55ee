"""Wire models (pydantic v2): the contract's JSON formats and their JSON Schemas."""

from waybill_watch.models.anomaly import Action, AnomalyEvent, AnomalyStatus, Scope, Severity
from waybill_watch.models.dlq import DlqRecord
from waybill_watch.models.envelope import FEED_NAMES, CaptureEnvelope, FeedName
from waybill_watch.models.order import Destination, OrderEvent, OrderEventType
from waybill_watch.models.tracking import Location, TrackingEvent

__all__ = [
    "FEED_NAMES",
    "Action",
    "AnomalyEvent",
    "AnomalyStatus",
    "CaptureEnvelope",
    "Destination",
    "DlqRecord",
    "FeedName",
    "Location",
    "OrderEvent",
    "OrderEventType",
    "Scope",
    "Severity",
    "TrackingEvent",
]
