"""The capture envelope (contract §3): one received callback, exactly as it arrived."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from waybill_watch.models.base import Timestamp, WireModel

FeedName = Literal["kdniao", "kuaidi100", "17track", "aftership", "canonical", "merchant"]
FEED_NAMES: tuple[str, ...] = get_args(FeedName)


class CaptureEnvelope(WireModel):
    """One callback request; ``tracking.raw`` carries exactly these (a topic dump is a capture)."""

    feed: FeedName
    received_at: Timestamp
    content_type: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = Field(description="The exact raw request body, as text.")
