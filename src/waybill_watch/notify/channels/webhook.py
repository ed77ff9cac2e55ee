"""Generic webhook: a JSON body with the original events, signed with a timestamp.

Headers: ``X-Waybill-Watch-Timestamp`` (unix seconds), ``X-Waybill-Watch-Signature`` (base64
HMAC-SHA256 of ``f"{timestamp}.{body}"`` with the channel's secret) and
``X-Waybill-Watch-Delivery`` (the same id on every try of this message: receivers drop a
repeat). docs/notify.md shows the receiver's check.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from waybill_watch import jsonio
from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.channels.http import Reply, post
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch, plain_text
from waybill_watch.notify.rules import WebhookChannel
from waybill_watch.notify.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)

USER_AGENT = "waybill-watch-notify/1"


def body(batch: Batch, notices: Sequence[Notice]) -> bytes:
    """The JSON body: the same bytes on every try (nothing in it depends on the attempt)."""
    payload: dict[str, Any] = {
        "delivery_id": batch.delivery_id,
        "type": "waybill-watch.notification",
        "language": batch.language,
        "digest": batch.is_digest,
        "title": batch.title,
        "text": plain_text(batch),
        "events": [
            {"kind": n.kind, "case_id": n.case_id, "case_url": n.case_url, "event": n.event}
            for n in notices
        ],
    }
    return jsonio.dumps(payload)


def headers(secret: str, delivery_id: str, data: bytes, timestamp: int) -> dict[str, str]:
    """The signed headers of one try."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: webhook_signature(secret, timestamp, data),
        DELIVERY_HEADER: delivery_id,
    }


class WebhookSender:
    """POSTs to the configured URL; any 2xx is an acknowledgement."""

    def __init__(self, name: str, config: WebhookChannel, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        data = body(batch, notices)
        signed = headers(
            self.config.secret.get_secret_value(), batch.delivery_id, data, int(time.time())
        )
        reply = await post(
            self.session,
            self.config.url.get_secret_value(),
            data,
            signed,
            self.config.timeout.total_seconds(),
        )
        if isinstance(reply, Reply):
            return Outcome("delivered", "ok")
        return reply
