"""What every feed adapter shares, so each module only says what is particular to its feed."""

from __future__ import annotations

from collections.abc import Mapping

from waybill_watch.feeds.base import FeedConfig, ParseResult
from waybill_watch.feeds.common import run_guarded
from waybill_watch.feeds.signing import verify_hmac_header
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import zone


class FeedAdapter:
    """Configuration and a ``parse`` that only ever raises ``MalformedBody``.

    The zone is looked up at construction, so a bad ``feed_timezones`` entry fails when the
    worker starts, not on the feed's first push. Subclasses set ``name`` and write ``_parse``.
    """

    name: str

    def __init__(self, config: FeedConfig | None = None) -> None:
        self.config = config if config is not None else FeedConfig()
        zone(self.config.timezone)

    def parse(self, envelope: CaptureEnvelope) -> ParseResult:
        """Read an envelope; any parser bug becomes ``MalformedBody('parser_error')``."""
        return run_guarded(self.name, self._parse, envelope)

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        raise NotImplementedError


class HmacHeaderFeed(FeedAdapter):
    """A feed signed with base64(HMAC-SHA256(secret, raw body)) in ``signature_header``."""

    signature_header: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check the HMAC header (see ``signing.verify_hmac_header``)."""
        verify_hmac_header(self.config, self.name, headers, body, self.signature_header)
