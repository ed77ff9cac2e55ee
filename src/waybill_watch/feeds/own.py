"""What our own two feeds (canonical, merchant) share: signature header, item-by-item
validation, validation errors and the acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from waybill_watch.feeds.adapter import HmacHeaderFeed
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedConfig,
    FeedError,
    MalformedBody,
    Rejected,
)
from waybill_watch.feeds.signing import (
    OWN_SIGNATURE_HEADER,
    OWN_SIGNATURE_V2_HEADER,
    OWN_TIMESTAMP_HEADER,
    ReplayGuard,
    header,
    required_secret,
    timestamped_signature,
    verify_timestamped,
)
from waybill_watch.jsonio import dumps
from waybill_watch.masking import mask_text

M = TypeVar("M", bound=BaseModel)

#: Items one push may carry (a real canonical event is ~250 bytes: a 1 MiB body holds ~4,000).
#: Validating an item costs microseconds and rejecting one tens of them, all on the ingest's
#: event loop; bounded here so no body can hold the loop for more than a fraction of a second.
MAX_ITEMS = 10_000
#: Rejected items described in full (masked validation text); the rest get a short message.
DETAILED_REJECTIONS = 100

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
    ``bad_time`` when only its times are wrong) and the rest of the array is still used.

    More than ``MAX_ITEMS`` items refuse the whole body (``too_many_items``); only the first
    ``DETAILED_REJECTIONS`` rejected items carry the validation text."""
    if len(items) > MAX_ITEMS:
        raise MalformedBody(
            "too_many_items", f"{len(items)} items in one push; at most {MAX_ITEMS}"
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(Rejected(reason, f"{label} [{index}]: not a JSON object"))
            continue
        try:
            yield model.model_validate(item)
        except ValidationError as exc:
            if len(rejected) >= DETAILED_REJECTIONS:
                rejected.append(Rejected(reason, f"{label} [{index}]: invalid", waybill_of(item)))
                continue
            rejected.append(
                Rejected(
                    validation_reason(exc, reason),
                    validation_text(exc, f"{label} [{index}]"),
                    waybill_of(item),
                )
            )


class OwnFeed(HmacHeaderFeed):
    """Our own feeds: signed with ``X-Waybill-Watch-Signature`` (contract §8) or, replay-proof,
    with ``X-Waybill-Watch-Timestamp`` + ``X-Waybill-Watch-Signature-V2``; acknowledged with
    ``{"ok": ...}``."""

    signature_header = OWN_SIGNATURE_HEADER

    def __init__(self, config: FeedConfig | None = None) -> None:
        super().__init__(config)
        self.replay_guard = ReplayGuard(self.config.signature_tolerance_seconds)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Timestamped signature when sent (or required), else the contract's header."""
        verify_timestamped(self.config, self.name, headers, body, self.replay_guard)

    def release(self, headers: Mapping[str, str], body: bytes) -> None:
        """Forget a verified request's timestamped signature: it was not accepted after all
        (unreadable body, Kafka down), so the sender may send that very request again."""
        stamp = header(headers, OWN_TIMESTAMP_HEADER)
        if stamp is None or header(headers, OWN_SIGNATURE_V2_HEADER) is None:
            return
        secret = required_secret(self.config, self.name)
        if secret is not None and stamp.strip().isascii():
            self.replay_guard.release(timestamped_signature(secret, stamp.strip(), body))

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 ``{"ok": true}``; refusals carry the error's status and reason."""
        return own_acknowledgement(error)
