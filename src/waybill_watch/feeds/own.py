"""What our own two feeds (canonical, merchant) share: signature header, item-by-item
validation, validation errors and the acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from waybill_watch.feeds.adapter import HmacHeaderFeed
from waybill_watch.feeds.base import Acknowledgement, FeedError, Rejected
from waybill_watch.feeds.signing import OWN_SIGNATURE_HEADER
from waybill_watch.jsonio import dumps
from waybill_watch.masking import mask_text

M = TypeVar("M", bound=BaseModel)

_TIME_FIELDS = frozenset({"event_time", "received_at", "occurred_at", "promised_delivery_at"})


def validation_reason(exc: ValidationError, default: str) -> str:
    """``bad_time`` when only time fields are wrong, else ``default``."""
    fields = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    return "bad_time" if fields and fields <= _TIME_FIELDS else default


def validation_text(exc: ValidationError, prefix: str) -> str:
    """A validation error as text without the offending input (it may be personal data)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return mask_text(f"{prefix}: " + "; ".join(parts))


def waybill_of(item: Any) -> str | None:
    """The waybill an unusable item names, for the DLQ record (if it names one)."""
    value = item.get("waybill") if isinstance(item, dict) else None
    return value[:64] if isinstance(value, str) and value else None


def own_acknowledgement(error: FeedError | None) -> Acknowledgement:
    """Our own feeds answer ``{"ok": true}`` or ``{"ok": false, "reason", "error"}``."""
    if error is None:
        return Acknowledgement(200, dumps({"ok": True}))
    body = {"ok": False, "reason": error.reason, "error": mask_text(error.message)}
    return Acknowledgement(error.http_status, dumps(body))


def validated(
    items: list[Any], model: type[M], reason: str, label: str, rejected: list[Rejected]
) -> Iterator[M]:
    """Each item that validates as ``model``; a bad one is rejected alone (``reason``, or
    ``bad_time`` when only its times are wrong) and the rest of the array is still used."""
    for index, item in enumerate(items):
        try:
            yield model.model_validate(item)
        except ValidationError as exc:
            rejected.append(
                Rejected(
                    validation_reason(exc, reason),
                    validation_text(exc, f"{label} [{index}]"),
                    waybill_of(item),
                )
            )


class OwnFeed(HmacHeaderFeed):
    """Our own feeds: signed with ``X-Waybill-Watch-Signature``, acknowledged with
    ``{"ok": ...}``."""

    signature_header = OWN_SIGNATURE_HEADER

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 ``{"ok": true}``; refusals carry the error's status and reason."""
        return own_acknowledgement(error)
