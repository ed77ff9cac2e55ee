"""The small interface every courier/merchant feed implements: verify, parse, acknowledge.

HTTP ingest calls ``verify`` then ``parse`` (to answer 400 on malformed bodies before anything
is written), writes the capture envelope to ``tracking.raw`` and answers with ``acknowledge``.
The normaliser and ``replay`` call ``parse`` on envelopes. No module here knows about Kafka,
Faust or aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from waybill_watch.domain.types import WaybillUpdate
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent


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
