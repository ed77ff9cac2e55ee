"""What the notifier says about one event, independent of language and platform.

A ``Notice`` is built once from an anomaly event or a ``cases.events`` record (``core``) and
stored with each queued message, so a message sent hours later (quiet hours, retries) says
exactly what the event said. ``render`` turns it into words, ``channels/`` into each
platform's body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from waybill_watch.models.anomaly import AnomalyStatus, AnomalyType, Scope, Severity
from waybill_watch.models.base import Timestamp
from waybill_watch.models.case_event import CaseEventKind
from waybill_watch.notify.rules import EventKind, Language


class Fact(BaseModel):
    """One line of the evidence summary: a kind (``scan``, ``order``, ``waybills``...) and
    its values, put into words per language by ``render``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str
    values: dict[str, Any] = Field(default_factory=dict)


class Notice(BaseModel):
    """One event, as every channel reports it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: EventKind
    #: The event's identity for deduplication: ``anomaly:<id>:<status>:<detected_at>`` (an
    #: episode emits ``updated`` many times) or ``case:<event_id>``.
    dedupe_key: str
    type: AnomalyType
    severity: Severity
    status: AnomalyStatus | None = None
    case_event: CaseEventKind | None = None
    scope: Scope
    subject: str
    waybill: str | None = None
    courier: str | None = None
    merchant: str | None = None
    site: str | None = None
    reasons: list[str] = Field(default_factory=list)
    #: When it happened: the anomaly's ``detected_at`` or the case event's ``at`` (the start of
    #: the delivery-latency measurement).
    at: Timestamp
    facts: list[Fact] = Field(default_factory=list)
    next_step: str | None = None
    next_due_at: Timestamp | None = None
    case_id: str
    case_url: str
    #: The original record (webhooks carry it to the receiver as it was).
    event: dict[str, Any] = Field(default_factory=dict)


class Queued(BaseModel):
    """One message the core asks to queue: a notice for one channel."""

    model_config = ConfigDict(frozen=True)

    channel: str
    rule: str
    notice: Notice
    language: Language
    timezone: str
    #: Not before this (quiet hours, or the end of the digest window).
    send_after: datetime
    #: Messages of one channel with the same digest key go out as one message.
    digest_key: str | None = None


class DeadLetter(BaseModel):
    """One record of ``notifications.dlq`` (key: the delivery id): a message that could not
    be delivered, with why, and everything needed to send it by other means."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(
        description="undeliverable (the receiver refused it for good) or attempts_exhausted."
    )
    result: str = Field(description="The last attempt's result code, e.g. http_500, timeout.")
    error: str = Field(description="The last attempt's error text.")
    channel: str
    channel_type: str
    delivery_id: str
    attempts: int
    dead_lettered_at: Timestamp
    dedupe_keys: list[str]
    notices: list[Notice]
