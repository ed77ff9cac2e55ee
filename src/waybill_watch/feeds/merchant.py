"""The merchant feed: order events (contract §4), one JSON object or an array of them.

Signed with ``X-Waybill-Watch-Signature`` (merchant secret). Each event is validated with the
wire model; a bad one is rejected alone. Output goes to ``ParseResult.orders``.
"""

from __future__ import annotations

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
from waybill_watch.feeds.signing import OWN_SIGNATURE_HEADER
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent

FEED = "merchant"


class MerchantFeed(HmacHeaderFeed):
    """Merchant order events in, ``ParseResult.orders`` out."""

    name = FEED
    signature_header = OWN_SIGNATURE_HEADER

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        value = load_json(envelope.body, "body")
        if isinstance(value, dict):
            items = [value]
        elif isinstance(value, list):
            items = value
        else:
            raise MalformedBody("bad_shape", "merchant body must be an order event or an array")
        result = ParseResult()
        for index, item in enumerate(items):
            try:
                result.orders.append(OrderEvent.model_validate(item))
            except ValidationError as exc:
                result.rejected.append(
                    Rejected(
                        validation_reason(exc, "invalid_order"),
                        validation_text(exc, f"order event [{index}]"),
                        waybill_of(item),
                    )
                )
        return result

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 ``{"ok": true}``; refusals carry the error's status and reason."""
        return own_acknowledgement(error)
