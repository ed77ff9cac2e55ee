"""``tracking.raw`` → per-waybill updates (internal topic) and order events; bad input → DLQ.

Stateless: a whole-trace push becomes one update per waybill; which scans are new is decided
by the per-waybill processor, which owns the state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.feeds.base import Feed, FeedError
from waybill_watch.masking import mask_text
from waybill_watch.metrics import Metrics
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import local_now
from waybill_watch.worker.codec import encode_order, encode_update
from waybill_watch.worker.outputs import ORIGIN_HEADER, Outputs, Send

log = logging.getLogger(__name__)


class Normalizer:
    """Parses envelopes with the same feed code as ingest and replay."""

    def __init__(
        self,
        feeds: Mapping[str, Feed],
        send: Send,
        outputs: Outputs,
        metrics: Metrics,
        *,
        raw_topic: str,
        updates_topic: str,
        orders_topic: str,
        timezone: str,
        origin: str,
    ) -> None:
        self.feeds = feeds
        self.send = send
        self.outputs = outputs
        self.metrics = metrics
        self.raw_topic = raw_topic
        self.updates_topic = updates_topic
        self.orders_topic = orders_topic
        self.timezone = timezone
        #: Order events published to ``orders.events`` for downstream consumers carry this
        #: header so the waybill processor does not apply them a second time.
        self.origin_headers = {ORIGIN_HEADER: origin.encode()}
        #: Largest ``received_at`` seen: the stream clock ticks carry it.
        self.max_received_at: datetime | None = None

    async def handle(self, raw: bytes) -> None:
        """Normalise one ``tracking.raw`` record; never raises for bad input."""
        try:
            envelope = CaptureEnvelope.model_validate_json(raw)
        except ValidationError as exc:
            await self._reject(raw, None, "bad_envelope", _short(exc))
            return
        if self.max_received_at is None or envelope.received_at > self.max_received_at:
            self.max_received_at = envelope.received_at
        feed = self.feeds[envelope.feed]
        try:
            result = feed.parse(envelope)
        except FeedError as error:
            await self._reject(raw, envelope.feed, error.reason, error.message)
            return
        except Exception as exc:  # a parser bug must not stop the stream or lose the record
            log.exception("feed %s crashed on an envelope", envelope.feed)
            await self._reject(raw, envelope.feed, "parser_error", repr(exc))
            return
        for update in result.updates:
            await self.send(
                self.updates_topic, update.waybill.encode(), encode_update(update), None
            )
        for order in result.orders:
            key = order.waybill.encode()
            await self.send(
                self.updates_topic, key, encode_order(order, envelope.received_at), None
            )
            await self.send(self.orders_topic, key, jsonio.dumps(order), self.origin_headers)
        for part in result.rejected:
            await self._reject(raw, envelope.feed, part.reason, part.error, count=False)
        outcome = "ignored" if result.ignored else ("partial" if result.rejected else "ok")
        self.metrics.envelopes_normalized.labels(envelope.feed, outcome).inc()

    async def _reject(
        self, raw: bytes, feed: str | None, reason: str, error: str, *, count: bool = True
    ) -> None:
        if count:
            self.metrics.envelopes_normalized.labels(feed or "_invalid", "rejected").inc()
        log.warning("tracking.raw record rejected: %s: %s", reason, mask_text(error))
        await self.outputs.dead_letter(
            source=self.raw_topic,
            reason=reason,
            error=mask_text(error),
            payload=raw,
            now=local_now(self.timezone),
            feed=feed,
        )


def _short(exc: ValidationError) -> str:
    """A one-line summary of a pydantic error (no input values: they may hold personal data)."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)
