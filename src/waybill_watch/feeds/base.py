"""The small interface every courier/merchant feed implements: verify, parse, acknowledge.

HTTP ingest calls ``verify`` then ``parse`` (to answer 400 on malformed bodies before anything
is written), writes the capture envelope to ``tracking.raw`` and answers with ``acknowledge``.
The normaliser and ``replay`` call ``parse`` (or a ``DraftFeed``'s ``parse_pending``) on
envelopes. No module here knows about Kafka, the stream engine or aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from waybill_watch.domain.types import Scan, WaybillUpdate
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent

if TYPE_CHECKING:
    from waybill_watch.feeds.scans import PendingParse


class FeedError(Exception):
    """Input a feed refuses. ``reason`` is a stable code used in metrics and the DLQ."""

    http_status: ClassVar[int] = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class MalformedBody(FeedError):
    """The body cannot be read as this feed's format (HTTP 400)."""

    http_status = 400


class SignatureMissing(FeedError):
    """A secret is configured but the request carries no signature (HTTP 401)."""

    http_status = 401


class SignatureInvalid(FeedError):
    """The signature does not match the body (HTTP 403)."""

    http_status = 403


class UnsignedNotAllowed(FeedError):
    """The feed has no secret configured and unsigned input is not allowed (HTTP 403)."""

    http_status = 403


class Unavailable(FeedError):
    """Kafka did not acknowledge the write; the provider should retry (HTTP 503)."""

    http_status = 503


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Per-feed configuration taken from Settings."""

    secret: str | None = None
    timezone: str = "Asia/Shanghai"
    allow_unsigned: bool = False
    ebusiness_id: str = ""  # Kdniao acknowledgement echo
    #: Own feeds (canonical, merchant): the signed timestamp's window and whether it is required.
    signature_tolerance_seconds: float = 300.0
    require_signed_timestamp: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """One part of an otherwise readable push that could not be used (goes to the DLQ)."""

    reason: str
    error: str
    waybill: str | None = None


@dataclass(slots=True)
class ParseResult:
    """What one envelope said: waybill updates, order events, rejected parts."""

    updates: list[WaybillUpdate] = field(default_factory=list)
    orders: list[OrderEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Set when the push is valid but deliberately not processed (e.g. Kdniao RequestType 107).
    ignored: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The HTTP answer a provider expects."""

    status: int
    body: bytes
    content_type: str = "application/json"


class Feed(Protocol):
    """One courier data service or our own canonical/merchant feed."""

    name: str
    config: FeedConfig

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check the request's signature; raise a FeedError subclass when it fails.

        ``headers`` keys are lower-case. With no secret configured this raises
        ``UnsignedNotAllowed`` unless ``config.allow_unsigned`` is on.
        """
        ...

    def parse(self, envelope: CaptureEnvelope) -> ParseResult:
        """Read an envelope into canonical updates; raise MalformedBody when unreadable."""
        ...

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """The answer for an accepted request (``error`` None) or a refused one."""
        ...


class DraftFeed(Feed, Protocol):
    """A feed of whole-trace pushes that can hand out its scans unbuilt (``PendingUpdate``).

    The worker's normaliser sends each trace's draft in a compact wire form and the waybill
    stage builds only the scans the waybill's state lacks (most of a whole-trace push is
    repeated). ``scan_from_draft(draft_to_wire(d), ...)`` equals the scan the feed's own
    builder makes from ``d``.
    """

    def parse_pending(self, envelope: CaptureEnvelope) -> PendingParse:
        """``parse`` with each update's scans left as drafts."""
        ...

    def draft_to_wire(self, draft: Any) -> list[Any]:
        """A draft as JSON-ready data; its first element is the scan's ``event_id``."""
        ...

    def scan_from_draft(
        self, wire: list[Any], waybill: str, courier: str, received_at: datetime
    ) -> Scan:
        """The canonical scan of a draft in wire form (of this waybill's update)."""
        ...


def draft_feeds(feeds: Mapping[str, Feed]) -> dict[str, DraftFeed]:
    """The feeds among ``feeds`` that offer drafts (``DraftFeed``)."""
    return {
        name: feed  # type: ignore[misc]
        for name, feed in feeds.items()
        if all(hasattr(feed, m) for m in ("parse_pending", "draft_to_wire", "scan_from_draft"))
    }
