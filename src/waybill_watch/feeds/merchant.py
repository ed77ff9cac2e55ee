"""The merchant feed: order events (contract §4), one JSON object or an array of them.

Signed with ``X-Waybill-Watch-Signature`` (merchant secret). Each event is validated with the
wire model; a bad one is rejected alone. Output goes to ``ParseResult.orders``.
"""

from __future__ import annotations

from waybill_watch.feeds.base import MalformedBody, ParseResult
from waybill_watch.feeds.common import load_json
from waybill_watch.feeds.own import OwnFeed, validated
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent

FEED = "merchant"


class MerchantFeed(OwnFeed):
    """Merchant order events in, ``ParseResult.orders`` out."""

    name = FEED

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        value = load_json(envelope.body, "body")
        if isinstance(value, dict):
            items = [value]
        elif isinstance(value, list):
            items = value
        else:
            raise MalformedBody("bad_shape", "merchant body must be an order event or an array")
        result = ParseResult()
        result.orders = list(
            validated(items, OrderEvent, "invalid_order", "order event", result.rejected)
        )
        return result
