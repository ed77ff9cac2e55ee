"""17TRACK API v2.2 webhooks (reference §3), feed name ``17track``.

Body: JSON ``{"event", "data"}``; header ``sign`` = SHA-256 hex of raw body + "/" + key. Each
push carries the full event list of every provider (origin and destination carriers); all of
them become scans, the same event reported twice keeps one id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from waybill_watch.domain.types import Scan
from waybill_watch.feeds.adapter import FeedAdapter
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedError,
    MalformedBody,
    ParseResult,
    Rejected,
)
from waybill_watch.feeds.common import (
    EventTime,
    as_dict,
    as_list,
    as_text,
    load_object,
    show,
    try_event_time,
    waybill_problem,
)
from waybill_watch.feeds.couriers import TRACK17_KEYS, TRACK17_NAMES, kdniao_style
from waybill_watch.feeds.own import own_acknowledgement
from waybill_watch.feeds.scans import Updates, WaybillRef, make_scan
from waybill_watch.feeds.signing import check_signature, header, required_secret, track17_sign
from waybill_watch.feeds.text_rules import (
    Row,
    coded_row,
    normalise_city,
    read_text,
    status_from_text,
)
from waybill_watch.feeds.track17_codes import (
    ALERTS,
    MAIN_STATUSES,
    STAGES,
    SUB_STATUSES,
    TRACKING_EVENTS,
)
from waybill_watch.models.envelope import CaptureEnvelope

FEED = "17track"
SIGN_HEADER = "sign"


def event_row(sub_status: str, stage: str) -> Row | None:
    """Mapping row of one event: sub-status, else its main-status prefix, else the stage."""
    return coded_row(sub_status, SUB_STATUSES, MAIN_STATUSES, stage, STAGES)


class Track17Feed(FeedAdapter):
    """17TRACK webhook adapter: verify ``sign``, read every provider's events, answer 200."""

    name = FEED

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """``sign`` header = lower-case SHA-256 hex of raw body + "/" + security key."""
        key = required_secret(self.config, FEED)
        if key is None:
            return
        given = header(headers, SIGN_HEADER)
        check_signature(
            track17_sign(body, key), given.lower() if given else None, FEED, "header sign"
        )

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        doc = load_object(envelope.body, "body")
        event = as_text(doc.get("event")).strip()
        if not event:
            raise MalformedBody("missing_field", "body has no event")
        if event not in TRACKING_EVENTS:
            return ParseResult(ignored=f"17track event {show(event)}")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise MalformedBody("missing_field", "body has no data object")
        track_info = as_dict(data.get("track_info"))
        providers = as_list(as_dict(track_info.get("tracking")).get("providers"))
        waybill = as_text(data.get("number")).strip()
        courier = _courier(data.get("carrier"), providers)
        problem = waybill_problem(waybill, courier)
        if problem is not None:
            raise MalformedBody(problem.reason, f"data: {problem.message}")

        result = ParseResult()
        updates = Updates(FEED, envelope.received_at)
        target = WaybillRef(waybill, courier, envelope.received_at)
        for where, value in _events(track_info, providers):
            scan = self._scan(value, where, target, result.rejected)
            if scan is not None:
                updates.add_scan(scan)
        main = as_text(as_dict(track_info.get("latest_status")).get("status")).strip()
        if main in ALERTS:
            updates.alert(waybill, courier, ALERTS[main], main, f"17TRACK latest status {main}")
        result.updates = updates.build()
        return result

    def _scan(
        self, value: Any, where: str, target: WaybillRef, rejected: list[Rejected]
    ) -> Scan | None:
        if not isinstance(value, dict):
            rejected.append(Rejected("bad_shape", f"{where} is not an object", target.waybill))
            return None
        when = self._time(value)
        if isinstance(when, str):
            reason = "missing_field" if when == "time is empty" else "bad_time"
            rejected.append(Rejected(reason, f"{where}: {when}", target.waybill))
            return None
        text = as_text(value.get("description"))
        location = as_text(value.get("location"))
        sub_status = as_text(value.get("sub_status")).strip()
        stage = as_text(value.get("stage")).strip()
        facts = read_text(text)
        row = event_row(sub_status, stage)
        code = sub_status or stage or None
        if row is not None:
            status, rule = row
        else:
            status, rule, code = status_from_text(facts, None, None, code)
        city = as_text(as_dict(value.get("address")).get("city")) or location
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
            city=normalise_city(city),
            identity=f"{text}\x1f{location}",
        )

    def _time(self, value: dict[str, Any]) -> EventTime | str:
        """``time_iso`` (offset), else ``time_utc``, else ``time_raw`` read in the feed zone."""
        for key in ("time_iso", "time_utc"):
            text = as_text(value.get(key))
            if text.strip():
                return try_event_time(text, self.config.timezone)
        raw = as_dict(value.get("time_raw"))
        text = f"{as_text(raw.get('date'))} {as_text(raw.get('time'))}".strip()
        return try_event_time(text, self.config.timezone)

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """HTTP 200 on success (17TRACK only checks the status); refusals carry theirs."""
        return own_acknowledgement(error)


def _events(track_info: dict[str, Any], providers: list[Any]) -> Iterator[tuple[str, Any]]:
    """Every event of every provider, then ``latest_event`` (usually one of them again)."""
    for p_index, provider in enumerate(providers):
        for e_index, value in enumerate(as_list(as_dict(provider).get("events"))):
            yield f"providers[{p_index}].events[{e_index}]", value
    latest = track_info.get("latest_event")
    if isinstance(latest, dict) and any(k in latest for k in ("time_iso", "time_utc", "time_raw")):
        yield "latest_event", latest


def _courier(carrier: Any, providers: list[Any]) -> str:
    """Kdniao-style code of the 17TRACK carrier key (by key, else by provider name)."""
    key = as_text(carrier).strip()
    if key in TRACK17_KEYS:
        return TRACK17_KEYS[key]
    for provider in providers:
        info = as_dict(as_dict(provider).get("provider"))
        if as_text(info.get("key")).strip() == key:
            name = as_text(info.get("name")).strip().lower()
            if name in TRACK17_NAMES:
                return TRACK17_NAMES[name]
    return kdniao_style(TRACK17_KEYS, key) if key else ""
