"""Kdniao (快递鸟) track pushes, RequestType 101/102 (contract §5.1, reference §1).

Body: form fields ``RequestData`` (JSON), ``DataSign``, ``RequestType``. Each push re-sends the
whole trace of one or more waybills; every trace becomes a scan whose ``event_id`` depends only
on what Kdniao repeats verbatim (waybill, courier, time, text), so the core keeps only new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import unquote

from waybill_watch.domain.ids import scan_ids
from waybill_watch.domain.types import Scan, Status
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedConfig,
    FeedError,
    MalformedBody,
    ParseResult,
    Rejected,
    SignatureInvalid,
    SignatureMissing,
)
from waybill_watch.feeds.common import (
    EventTime,
    as_list,
    as_text,
    body_text,
    event_time,
    form_value,
    load_object,
    read_form,
    run_guarded,
    show,
    try_event_time,
    waybill_problem,
)
from waybill_watch.feeds.kdniao_codes import (
    ACTIONS,
    ALERT_LABELS,
    ALERTS,
    IGNORED_REQUEST_TYPES,
    STATE_CHECK,
    TEXT_ACTIONS,
    TRACKING_REQUEST_TYPES,
)
from waybill_watch.feeds.scans import PendingParse, Updates, make_scan
from waybill_watch.feeds.signing import constant_time_equal, kdniao_data_sign, required_secret
from waybill_watch.feeds.text_rules import (
    SignRule,
    TextFacts,
    normalise_city,
    read_text,
    status_from_text,
)
from waybill_watch.jsonio import dumps
from waybill_watch.masking import mask_text
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import TimeParseError, zone

FEED = "kdniao"


#: A readable trace waiting to become a scan: (time, AcceptStation, the trace object, waybill,
#: courier, the waybill State when it is the latest trace, received_at, event_id). The trace
#: object keeps the fields only a built scan needs (Action, Location).
_Draft = tuple[EventTime, str, dict[str, Any], str, str, str | None, datetime, str]


class _Context(NamedTuple):
    """What every waybill of one push shares."""

    tz: str
    received_at: datetime
    push_time: EventTime | str | None  # str = why PushTime is unreadable
    updates: Updates
    rejected: list[Rejected]


def resolve_status(
    action: str, facts: TextFacts, state: str | None
) -> tuple[Status, SignRule | None, str | None]:
    """(status, sign rule, courier_code) of one trace.

    A known ``Action`` decides (unknown codes fall back to their first digit, reference §1.6);
    otherwise the text does, and for the waybill's latest trace (``state`` given) the waybill
    ``State`` cross-checks it (``STATE_CHECK``).
    """
    if action and action not in TEXT_ACTIONS:
        row = ACTIONS.get(action) or ACTIONS.get(action[0])
        if row is not None:
            return row[0], row[1], action
    check = STATE_CHECK.get(state) if state is not None else None
    return status_from_text(facts, check, state, action or None)


class KdniaoFeed:
    """Kdniao push adapter: verify ``DataSign``, read 101/102, ignore 107, answer its JSON ack."""

    name = FEED

    def __init__(self, config: FeedConfig | None = None) -> None:
        self.config = config if config is not None else FeedConfig()
        zone(self.config.timezone)  # an unknown zone fails at start-up, not on the first push

    # --- verify ---------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check ``DataSign`` = base64(md5hex(RequestData + AppKey)) on the once-decoded form.

        ``DataSign`` may safely be unescaped a second time (its alphabet has no ``+``/``/``);
        ``RequestData`` never is. A RequestData sent without URL encoding (its raw form text)
        is accepted as a second candidate: that is zero decodes, not two.
        """
        app_key = required_secret(self.config, FEED)
        if app_key is None:
            return
        fields = read_form(body_text(body))
        sign_field = fields.get("DataSign")
        given = sign_field.value.strip() if sign_field is not None else ""
        if not given:
            raise SignatureMissing("missing_signature", "kdniao: form field DataSign is missing")
        data = fields.get("RequestData")
        if data is None:
            raise MalformedBody("missing_field", "form field RequestData is missing")
        if "%" in given:
            given = unquote(given)
        candidates = (data.value,) if data.raw == data.value else (data.value, data.raw)
        if not any(constant_time_equal(kdniao_data_sign(c, app_key), given) for c in candidates):
            raise SignatureInvalid(
                "bad_signature", "kdniao: DataSign does not match RequestData + AppKey"
            )

    # --- parse ----------------------------------------------------------------------------
    def parse(self, envelope: CaptureEnvelope) -> ParseResult:
        """Read a push into one update per waybill; 107 is ignored, broken parts rejected."""
        return run_guarded(FEED, self._parse, envelope)

    def parse_pending(self, envelope: CaptureEnvelope) -> PendingParse:
        """``parse`` with each update's scans left unbuilt (``PendingUpdate``), for callers that
        hold the waybill's state and build only the scans it lacks (replay)."""
        return run_guarded(FEED, self._parse_pending, envelope)

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        found = self._parse_pending(envelope)
        updates = [pending.realise() for pending in found.updates]
        return ParseResult(updates=updates, rejected=found.rejected, ignored=found.ignored)

    def _parse_pending(self, envelope: CaptureEnvelope) -> PendingParse:
        fields = read_form(envelope.body)
        request_type = form_value(fields, "RequestType").strip()
        if request_type in IGNORED_REQUEST_TYPES:
            return PendingParse(ignored=IGNORED_REQUEST_TYPES[request_type])
        if request_type not in TRACKING_REQUEST_TYPES:
            raise MalformedBody(
                "unknown_request_type",
                f"RequestType {show(request_type)} is not 101, 102 or 107",
            )
        doc = load_object(form_value(fields, "RequestData"), "RequestData")
        data = doc.get("Data")
        if data is None:
            raise MalformedBody("missing_field", "RequestData has no Data array")
        if not isinstance(data, list):
            raise MalformedBody("bad_shape", "RequestData.Data is not an array")
        push_text = as_text(doc.get("PushTime")).strip()
        tz = self.config.timezone
        result = PendingParse()
        ctx = _Context(
            tz=tz,
            received_at=envelope.received_at,
            push_time=try_event_time(push_text, tz) if push_text else None,
            updates=Updates(FEED, envelope.received_at, _build_scan),
            rejected=result.rejected,
        )
        for index, item in enumerate(data):
            _read_waybill(item, index, ctx)
        result.updates = ctx.updates.pending()
        return result

    def draft_to_wire(self, draft: _Draft) -> list[Any]:
        """``[event_id, AcceptTime, AcceptStation, Action, Location, State]`` (``DraftFeed``):
        the trace's own texts, so the scan built from it is the one ``parse`` builds."""
        _, text, raw, _, _, state, _, event_id = draft
        return [
            event_id,
            as_text(raw.get("AcceptTime")),
            text,
            as_text(raw.get("Action")),
            as_text(raw.get("Location")),
            state,
        ]

    def scan_from_draft(
        self, wire: list[Any], waybill: str, courier: str, received_at: datetime
    ) -> Scan:
        """The scan of a draft in ``draft_to_wire`` form (``DraftFeed``)."""
        event_id, time_text, text, action, location, state = wire
        when = event_time(time_text, self.config.timezone)
        raw = {"Action": action, "Location": location}
        return _build_scan((when, text, raw, waybill, courier, state, received_at, event_id))

    # --- acknowledge ----------------------------------------------------------------------
    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """``{"EBusinessID","UpdateTime","Success","Reason"}``; refusals keep the error's status."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(zone(self.config.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        body = {
            "EBusinessID": self.config.ebusiness_id,
            "UpdateTime": local,
            "Success": error is None,
            "Reason": "" if error is None else mask_text(error.message),
        }
        return Acknowledgement(200 if error is None else error.http_status, dumps(body))


def _read_waybill(item: Any, index: int, ctx: _Context) -> None:
    """One ``Data[]`` element: its traces become scans, its StateEx alert an alert."""
    if not isinstance(item, dict):
        ctx.rejected.append(Rejected("bad_shape", f"Data[{index}] is not an object"))
        return
    waybill = as_text(item.get("LogisticCode")).strip()
    courier = as_text(item.get("ShipperCode")).strip()
    problem = waybill_problem(waybill, courier)
    if problem is not None:
        message = f"Data[{index}]: {problem.message}"
        ctx.rejected.append(Rejected(problem.reason, message, waybill[:64] or None))
        return
    raw_traces = item.get("Traces")
    if raw_traces is not None and not isinstance(raw_traces, list):
        ctx.rejected.append(Rejected("bad_shape", f"Data[{index}].Traces is not an array", waybill))
        return
    state = as_text(item.get("State")).strip()
    drafts, latest = _read_traces(as_list(raw_traces), waybill, courier, ctx)
    if drafts:
        entries = ctx.updates.entries(waybill, courier)
        for draft in drafts:
            entries.setdefault(draft[-1], draft)  # within a push the first occurrence wins
        # Only the latest trace is cross-checked against the waybill State.
        last = drafts[latest]
        if entries[last[-1]] is last:
            entries[last[-1]] = (*last[:5], state, *last[6:])
    _read_alert(item, waybill, courier, ctx)


def _read_traces(
    raw: list[Any], waybill: str, courier: str, ctx: _Context
) -> tuple[list[_Draft], int]:
    """The drafts of the readable traces and the position of the latest (ties: the later)."""
    drafts: list[_Draft] = []
    latest, latest_at = -1, None
    tz, received_at = ctx.tz, ctx.received_at
    event_id = scan_ids(waybill, courier)
    for index, value in enumerate(raw):
        if not isinstance(value, dict):
            ctx.rejected.append(Rejected("bad_shape", f"Traces[{index}] is not an object", waybill))
            continue
        time_text = value.get("AcceptTime")
        if type(time_text) is not str:
            time_text = as_text(time_text)
        if not time_text.strip():
            ctx.rejected.append(
                Rejected("missing_field", f"Traces[{index}] has no AcceptTime", waybill)
            )
            continue
        try:
            when = event_time(time_text, tz)
        except (TimeParseError, OverflowError, ValueError):
            problem = try_event_time(time_text, tz)  # the same failure, as a message
            ctx.rejected.append(Rejected("bad_time", f"Traces[{index}]: {problem}", waybill))
            continue
        text = value.get("AcceptStation")
        if type(text) is not str:
            text = as_text(text)
        if latest_at is None or when.at >= latest_at:
            latest, latest_at = len(drafts), when.at
        # The Action stays out of the identity: a 101 and a 102 push of the same trace
        # (merchants subscribed to both) and a later re-classification keep one event_id.
        drafts.append(
            (when, text, value, waybill, courier, None, received_at, event_id(when.key, text))
        )
    return drafts, latest


def _build_scan(draft: _Draft) -> Scan:
    """The canonical scan of one trace (``Updates`` builder: only for scans that are needed)."""
    when, text, raw, waybill, courier, state, received_at, event_id = draft
    action = as_text(raw.get("Action")).strip()
    facts = read_text(text)
    status, rule, code = resolve_status(action, facts, state)
    return make_scan(
        feed=FEED,
        waybill=waybill,
        courier=courier,
        when=when,
        received_at=received_at,
        status=status,
        rule=rule,
        code=code,
        text=text,
        facts=facts,
        city=normalise_city(as_text(raw.get("Location"))),
        event_id=event_id,
    )


def _read_alert(item: dict[str, Any], waybill: str, courier: str, ctx: _Context) -> None:
    """Waybill-level StateEx 401/402/403/412 → a courier alert (contract §5.1)."""
    state_ex = as_text(item.get("StateEx")).strip()
    kind = ALERTS.get(state_ex)
    if kind is None:
        return
    if isinstance(ctx.push_time, str):
        ctx.rejected.append(Rejected("bad_time", f"PushTime: {ctx.push_time}", waybill))
        return
    reported_at = ctx.push_time.at if ctx.push_time is not None else ctx.received_at
    reason = as_text(item.get("Reason")).strip()
    message = mask_text(reason) if reason else ALERT_LABELS[state_ex]
    ctx.updates.alert(waybill, courier, kind, state_ex, message, reported_at)
