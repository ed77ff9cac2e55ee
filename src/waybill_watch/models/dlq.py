"""Dead-letter records (contract §7): rejected input is kept with its reason, never dropped."""

from __future__ import annotations

from pydantic import Field

from waybill_watch.models.base import Timestamp, WireModel


class DlqRecord(WireModel):
    """The original record plus why it was rejected."""

    reason: str = Field(description="Stable machine-readable reason code, e.g. 'bad_signature'.")
    error: str = Field(description="Human-readable error text.")
    source_topic: str | None = None
    feed: str | None = None
    rejected_at: Timestamp
    key: str | None = None
    payload: str = Field(description="The original bytes: UTF-8 text, or base64 when not UTF-8.")
    payload_encoding: str = "utf-8"
