"""AfterShip Tracking webhooks (reference §4).

Body: JSON ``{"event", "event_id", "ts", "msg"}`` with the tracking object and all its
``checkpoints``; header ``aftership-hmac-sha256`` = base64(HMAC-SHA256(secret, raw body)).
``event_id`` names the webhook delivery, not a scan: it stays out of scan ids (a re-sent
checkpoint must keep its id); ingest may use it to drop duplicate deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_watch.domain.types import CourierAlertKind, Scan
from waybill_watch.feeds.adapter import HmacHeaderFeed
from waybill_watch.feeds.aftership_codes import EVENT_ALERTS, SUBTAGS, TAG_ALERTS, TAGS
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedError,
    MalformedBody,
    ParseResult,
    Rejected,
)
from waybill_watch.feeds.common import (
    as_list,
    as_text,
    load_object,
    show,
    try_event_time,
    waybill_problem,
)
from waybill_watch.feeds.couriers import AFTERSHIP, kdniao_style
from waybill_watch.feeds.own import own_acknowledgement
from waybill_watch.feeds.scans import Updates, WaybillRef, make_scan
from waybill_watch.feeds.text_rules import (
    Row,
    coded_row,
    normalise_city,
    read_text,
    status_from_text,
)
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import from_epoch

FEED = "aftership"
SIGN_HEADER = "aftership-hmac-sha256"


def checkpoint_row(subtag: str, tag: str) -> Row | None:
    """Mapping row of a checkpoint: subtag, else its tag prefix, else the tag."""
    return coded_row(subtag, SUBTAGS, TAGS, tag, TAGS)


def delivery_id(envelope: CaptureEnvelope) -> str | None:
    """AfterShip's ``event_id`` of a webhook delivery (for dropping duplicate deliveries)."""
    try:
        doc = load_object(envelope.body, "body")
    except MalformedBody:
        return None
    return as_text(doc.get("event_id")).strip() or None


class AfterShipFeed(HmacHeaderFeed):
    """AfterShip webhook adapter: verify the HMAC, read every checkpoint, answer 200."""

    name = FEED
    signature_header = SIGN_HEADER

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        doc = load_object(envelope.body, "body")
        event = as_text(doc.get("event")).strip()
        if not event:
            raise MalformedBody("missing_field", "body has no event")
        msg = doc.get("msg")
        if msg is None:
            return ParseResult(ignored=f"aftership event {show(event)} without tracking")
        if not isinstance(msg, dict):
            raise MalformedBody("bad_shape", "msg is not an object")
        waybill = as_text(msg.get("tracking_number")).strip()
        slug = as_text(msg.get("slug"))
        courier = kdniao_style(AFTERSHIP, slug) if slug.strip() else ""
        problem = waybill_problem(waybill, courier)
        if problem is not None:
            raise MalformedBody(problem.reason, f"msg: {problem.message}")
        raw_checkpoints = msg.get("checkpoints")
        if raw_checkpoints is not None and not isinstance(raw_checkpoints, list):
            raise MalformedBody("bad_shape", "msg.checkpoints is not an array")

        result = ParseResult()
        updates = Updates(FEED, envelope.received_at)
        target = WaybillRef(waybill, courier, envelope.received_at)
        checkpoints = as_list(raw_checkpoints)
        for index, value in enumerate(checkpoints):
            scan = self._scan(value, f"checkpoints[{index}]", target, result.rejected)
            if scan is not None:
                updates.add_scan(scan)
        tag = as_text(msg.get("tag")).strip()
        kinds: list[tuple[CourierAlertKind, str]] = []
        if event in EVENT_ALERTS:
            kinds.append((EVENT_ALERTS[event], event))
        if tag in TAG_ALERTS:
            kinds.append((TAG_ALERTS[tag][1 if checkpoints else 0], tag))
        reported_at = (
            self._reported_at(doc.get("ts"), envelope, waybill, result.rejected) if kinds else None
        )
        if reported_at is not None:
            for kind, code in kinds:
                updates.alert(waybill, courier, kind, code, f"AfterShip {code}", reported_at)
        result.updates = updates.build()
        return result

    def _scan(
        self, value: Any, where: str, target: WaybillRef, rejected: list[Rejected]
    ) -> Scan | None:
        if not isinstance(value, dict):
            rejected.append(Rejected("bad_shape", f"{where} is not an object", target.waybill))
            return None
        time_text = as_text(value.get("checkpoint_time"))
        if not time_text.strip():
            rejected.append(Rejected("missing_field", f"{where} has no time", target.waybill))
            return None
        when = try_event_time(time_text, self.config.timezone)
        if isinstance(when, str):
            rejected.append(Rejected("bad_time", f"{where}: {when}", target.waybill))
            return None
        text = as_text(value.get("message"))
        location = as_text(value.get("location"))
        subtag = as_text(value.get("subtag")).strip()
        tag = as_text(value.get("tag")).strip()
        facts = read_text(text)
        row = checkpoint_row(subtag, tag)
        code = subtag or tag or None
        if row is not None:
            status, rule = row
        else:
            status, rule, code = status_from_text(facts, None, None, code)
        return make_scan(
            feed=FEED,
            waybill=target.waybill,
            courier=target.courier,
            when=when,
            received_at=target.received_at,
            status=status,
            rule=rule,
            code=code,
            text=text,
            facts=facts,
            city=normalise_city(as_text(value.get("city")) or location),
            identity=f"{text}\x1f{location}",
        )

    def _reported_at(
        self, ts: Any, envelope: CaptureEnvelope, waybill: str, rejected: list[Rejected]
    ) -> datetime | None:
        """The webhook's ``ts`` (UTC epoch seconds), else the envelope's ``received_at``."""
        if ts is None:
            return envelope.received_at
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            try:
                return from_epoch(ts, self.config.timezone)
            except (OverflowError, OSError, ValueError):
                pass
        rejected.append(Rejected("bad_time", f"ts {show(as_text(ts))} is not a time", waybill))
        return None

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 on success (any 2xx is accepted); refusals carry their status."""
        return own_acknowledgement(error)
