"""Builders for feed tests: envelopes around encoded provider bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from waybill_watch.domain.types import Scan, WaybillUpdate
from waybill_watch.feeds.base import ParseResult
from waybill_watch.feeds.encode import Encoded, envelope, kdniao_push
from waybill_watch.models.envelope import CaptureEnvelope

SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIVED_AT = datetime(2024, 5, 6, 10, 20, 31, 123000, tzinfo=SHANGHAI)


def env(feed: str, encoded: Encoded, received_at: datetime = RECEIVED_AT) -> CaptureEnvelope:
    """A capture envelope as ingest would write it."""
    return envelope(feed, encoded, received_at)


def raw_env(feed: str, body: str, received_at: datetime = RECEIVED_AT) -> CaptureEnvelope:
    """An envelope around an arbitrary body text."""
    return CaptureEnvelope.model_validate({"feed": feed, "received_at": received_at, "body": body})


def trace(time: str, text: str, action: str | None = None, location: str | None = None) -> dict:
    """One Kdniao trace."""
    out: dict[str, Any] = {"AcceptTime": time, "AcceptStation": text, "Remark": ""}
    if action is not None:
        out["Action"] = action
    if location is not None:
        out["Location"] = location
    return out


def waybill(number: str, traces: list[dict], courier: str = "ZTO", **extra: Any) -> dict[str, Any]:
    """One Kdniao ``Data[]`` element."""
    return {"ShipperCode": courier, "LogisticCode": number, "Traces": traces, **extra}


def kd_env(
    waybills: list[dict[str, Any]],
    request_type: int = 102,
    received_at: datetime = RECEIVED_AT,
    **kwargs: Any,
) -> CaptureEnvelope:
    """An envelope of an (unsigned) Kdniao push."""
    return env("kdniao", kdniao_push(waybills, None, request_type, **kwargs), received_at)


def only_update(result: ParseResult) -> WaybillUpdate:
    """The single update of a result (asserting there is exactly one)."""
    assert len(result.updates) == 1, result
    return result.updates[0]


def ids(scans: list[Scan]) -> list[str]:
    """Event ids in order."""
    return [s.event_id for s in scans]
