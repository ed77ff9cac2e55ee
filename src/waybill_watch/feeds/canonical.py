"""Our own canonical feed: a JSON array of canonical tracking events (contract §5).

For producers that already speak our format (another normaliser, a courier's direct
integration, the simulator). Signed with ``X-Waybill-Watch-Signature``. Items are validated
with the wire model; a bad item is rejected alone, the rest of the array is used.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pydantic import ValidationError

from waybill_watch.feeds.adapter import HmacHeaderFeed
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedError,
    MalformedBody,
    ParseResult,
    Rejected,
)
from waybill_watch.feeds.common import load_json
from waybill_watch.feeds.own import (
    own_acknowledgement,
    validation_reason,
    validation_text,
    waybill_of,
)
from waybill_watch.feeds.scans import Updates
from waybill_watch.feeds.signing import OWN_SIGNATURE_HEADER
from waybill_watch.feeds.text_rules import mask_signer
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.tracking import TrackingEvent

FEED = "canonical"


class CanonicalFeed(HmacHeaderFeed):
    """Canonical tracking events in, one ``WaybillUpdate`` per waybill out."""

    name = FEED
    signature_header = OWN_SIGNATURE_HEADER

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        items = load_json(envelope.body, "body")
        if not isinstance(items, list):
            raise MalformedBody("bad_shape", "canonical body must be a JSON array of events")
        result = ParseResult()
        updates = Updates(FEED, envelope.received_at)
        for index, item in enumerate(items):
            try:
                event = TrackingEvent.model_validate(item)
            except ValidationError as exc:
                result.rejected.append(
                    Rejected(
                        validation_reason(exc, "invalid_event"),
                        validation_text(exc, f"event [{index}]"),
                        waybill_of(item),
                    )
                )
                continue
            updates.add_scan(
                dataclasses.replace(
                    event.to_scan(),
                    received_at=envelope.received_at,
                    signer=mask_signer(event.signer),
                )
            )
        result.updates = updates.build()
        return result

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 ``{"ok": true}``; refusals carry the error's status and reason."""
        return own_acknowledgement(error)
