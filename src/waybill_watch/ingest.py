"""HTTP callback ingest, independent of the web framework and of Kafka.

verify → parse (reject unreadable bodies with 400 before anything is written) → write the
capture envelope through ``RawSink`` → acknowledge only after the sink confirmed the write. A
sink failure answers 503 so the courier retries: data accepted from a courier is never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from waybill_watch import jsonio
from waybill_watch.feeds.base import Acknowledgement, Feed, FeedError, MalformedBody, Unavailable
from waybill_watch.masking import mask_text
from waybill_watch.metrics import UNKNOWN_FEED, Metrics
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import local_now

log = logging.getLogger(__name__)

#: Writes one serialised envelope durably (Kafka acks) or raises.
RawSink = Callable[[bytes], Awaitable[None]]

#: Request headers kept in the envelope for replay-time signature verification.
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "sign",
        "aftership-hmac-sha256",
        "x-waybill-watch-signature",
        "x-waybill-watch-timestamp",
        "x-waybill-watch-signature-v2",
    }
)


class BodyTooLarge(FeedError):
    """The request body exceeds ``max_body_bytes`` (HTTP 413)."""

    http_status = 413


class UnknownFeed(FeedError):
    """No feed of that name (HTTP 404)."""

    http_status = 404


class SlowBody(FeedError):
    """The body did not arrive within the body read timeout (HTTP 408)."""

    http_status = 408


class UnsupportedEncoding(FeedError):
    """A ``Content-Encoding`` no courier uses (HTTP 415): bodies are never decompressed."""

    http_status = 415


class RateLimited(FeedError):
    """Too many callbacks from this source (HTTP 429, with ``Retry-After``)."""

    http_status = 429


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the web layer sends back."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class IngestService:
    """The callback handler shared by ``waybill-watch worker`` and ``waybill-watch ingest``."""

    def __init__(
        self,
        feeds: Mapping[str, Feed],
        sink: RawSink,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        timezone: str,
    ) -> None:
        self.feeds = feeds
        self.sink = sink
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.timezone = timezone
        self._responses: dict[tuple[str, int], Any] = {}

    def count_response(self, feed_name: str, status: int) -> None:
        """Count one answer of ``POST /callbacks/{feed}`` (the web layer calls this for every
        answer, errors of its own included): ``waybill_watch_callback_responses_total``."""
        label = feed_name if feed_name in self.feeds else UNKNOWN_FEED
        child = self._responses.get((label, status))
        if child is None:
            child = self.metrics.callback_responses.labels(label, str(status))
            self._responses[(label, status)] = child
        child.inc()

    def refuse(
        self, feed_name: str, error: FeedError, headers: tuple[tuple[str, str], ...] = ()
    ) -> IngestResult:
        """Refuse a request at the edge, before ``handle`` (rate limit, slow or encoded body):
        counted as received and rejected with ``error.reason``, answered in the feed's format."""
        feed = self.feeds.get(feed_name)
        label = feed_name if feed is not None else UNKNOWN_FEED
        self.metrics.callbacks_received.labels(label).inc()
        self.metrics.callbacks_rejected.labels(label, error.reason).inc()
        # A flood over the rate limit would flood the log too: that one is counted, not logged.
        level = logging.DEBUG if isinstance(error, RateLimited) else logging.WARNING
        log.log(level, "refused %s callback: %s (%s)", label, error.reason, error.message)
        if feed is None:
            return IngestResult(
                error.http_status,
                error.message.encode("utf-8"),
                "text/plain; charset=utf-8",
                headers,
            )
        ack = feed.acknowledge(error, local_now(self.timezone))
        return IngestResult(ack.status, ack.body, ack.content_type, headers)

    async def handle(
        self, feed_name: str, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> IngestResult:
        """Answer one callback request."""
        started = time.perf_counter()
        feed = self.feeds.get(feed_name)
        label = feed_name if feed is not None else UNKNOWN_FEED
        self.metrics.callbacks_received.labels(label).inc()
        if feed is None:
            self.metrics.callbacks_rejected.labels(label, "unknown_feed").inc()
            return _plain(404, f"unknown feed {feed_name[:40]!r}; known: {sorted(self.feeds)}")
        lowered = {k.lower(): v for k, v in headers.items()}
        verified = False
        try:
            if len(body) > self.max_body_bytes:
                raise BodyTooLarge(
                    "body_too_large", f"body is larger than {self.max_body_bytes} bytes"
                )
            feed.verify(lowered, body)
            verified = True
            envelope = self._envelope(feed_name, lowered, body, content_type)
            feed.parse(envelope)  # 400 now rather than a DLQ entry later
            await self._write(envelope)
        except FeedError as error:
            release = getattr(feed, "release", None)
            if verified and release is not None:
                release(lowered, body)  # not accepted: the same request may come again
            self.metrics.callbacks_rejected.labels(label, error.reason).inc()
            log.warning(
                "rejected %s callback: %s (%s)", feed_name, error.reason, mask_text(error.message)
            )
            ack = feed.acknowledge(error, local_now(self.timezone))
            return IngestResult(ack.status, ack.body, ack.content_type)
        except BaseException:  # cancelled (the client left) or a bug: not accepted either
            release = getattr(feed, "release", None)
            if verified and release is not None:
                release(lowered, body)
            raise
        self.metrics.callbacks_accepted.labels(label).inc()
        self.metrics.callback_latency.labels(label).observe(time.perf_counter() - started)
        ok: Acknowledgement = feed.acknowledge(None, local_now(self.timezone))
        return IngestResult(ok.status, ok.body, ok.content_type)

    def _envelope(
        self, feed_name: str, headers: Mapping[str, str], body: bytes, content_type: str
    ) -> CaptureEnvelope:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBody("bad_encoding", f"body is not UTF-8: {exc}") from exc
        return CaptureEnvelope(
            feed=feed_name,  # checked against the registry; pydantic validates it again
            received_at=local_now(self.timezone),
            content_type=_text(content_type),
            headers={k: _text(v) for k, v in headers.items() if k in KEPT_HEADERS},
            body=text,
        )

    async def _write(self, envelope: CaptureEnvelope) -> None:
        payload = jsonio.dumps(envelope)  # a failure here is our bug, never "Kafka down"
        try:
            await self.sink(payload)
        except Exception as exc:  # any broker/producer failure: the courier must retry
            log.error("could not write %s envelope to Kafka: %r", envelope.feed, exc)
            raise Unavailable("kafka_unavailable", "could not persist the callback") from exc


def _plain(status: int, text: str) -> IngestResult:
    return IngestResult(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def _text(value: str) -> str:
    """A header value as valid UTF-8 text (aiohttp keeps undecodable bytes as surrogates)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
