"""Our own canonical feed: a JSON array of canonical tracking events (contract §5).

For producers that already speak our format (another normaliser, a courier's direct
integration, the simulator). Signed with ``X-Waybill-Watch-Signature``. Items are validated
with the wire model; a bad item is rejected alone, the rest of the array is used.
"""

from __future__ import annotations

import dataclasses

from waybill_watch.feeds.base import MalformedBody, ParseResult
from waybill_watch.feeds.common import load_json
from waybill_watch.feeds.own import OwnFeed, validated
from waybill_watch.feeds.scans import Updates
from waybill_watch.feeds.text_rules import mask_signer
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.tracking import TrackingEvent

FEED = "canonical"


class CanonicalFeed(OwnFeed):
    """Canonical tracking events in, one ``WaybillUpdate`` per waybill out."""

    name = FEED

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        items = load_json(envelope.body, "body")
        if not isinstance(items, list):
            raise MalformedBody("bad_shape", "canonical body must be a JSON array of events")
        result = ParseResult()
        updates = Updates(FEED, envelope.received_at)
        for event in validated(items, TrackingEvent, "invalid_event", "event", result.rejected):
            updates.add_scan(
                dataclasses.replace(
                    event.to_scan(),
                    received_at=envelope.received_at,
                    signer=mask_signer(event.signer),
                )
            )
        result.updates = updates.build()
        return result
