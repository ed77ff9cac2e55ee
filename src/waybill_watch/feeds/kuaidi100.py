"""Kuaidi100 (快递100) subscription pushes (reference §2).

Body: form fields ``param`` (JSON) and ``sign`` (upper-case MD5 of param + salt, only when a
salt was given at subscribe time). One waybill per push; ``lastResult.data`` is the whole trace,
newest first. ``status=abort`` monitoring messages become courier alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from waybill_watch.domain.types import CourierAlertKind, Scan
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
    as_text,
    body_text,
    form_value,
    load_object,
    read_form,
    try_event_time,
    waybill_problem,
)
from waybill_watch.feeds.couriers import KUAIDI100, kdniao_style
from waybill_watch.feeds.kuaidi100_codes import (
    ABORT_MESSAGES,
    ALERTS,
    STATE_CHECK,
    STATES,
    STATUS_NAMES,
)
from waybill_watch.feeds.scans import Updates, latest_position, make_scan
from waybill_watch.feeds.signing import check_signature, kuaidi100_sign, required_secret
from waybill_watch.feeds.text_rules import (
    Row,
    city_from_area,
    normalise_city,
    read_text,
    status_from_text,
)
from waybill_watch.jsonio import dumps
from waybill_watch.masking import mask_text
from waybill_watch.models.envelope import CaptureEnvelope

FEED = "kuaidi100"
_STATE_LABELS = {code: name for name, code in STATUS_NAMES.items()}
_ACK_OK = {"result": True, "returnCode": "200", "message": "成功"}


class _Trace(NamedTuple):
    time: EventTime
    text: str
    code: str  # statusCode, or the code of the status name
    city: str | None


def trace_row(code: str) -> Row | None:
    """The mapping row of a trace code; alert codes say nothing about the scan itself."""
    return None if code in ALERTS else STATES.get(code)


class Kuaidi100Feed(FeedAdapter):
    """Kuaidi100 push adapter: verify ``sign``, read ``lastResult``, answer its JSON ack."""

    name = FEED

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """``sign`` = upper-case MD5(param + salt) on the once-decoded ``param``."""
        salt = required_secret(self.config, FEED)
        if salt is None:
            return
        fields = read_form(body_text(body))
        param = form_value(fields, "param")
        given = fields.get("sign")
        expected = kuaidi100_sign(param, salt)
        check_signature(expected, given.value.upper() if given else None, FEED, "form field sign")

    def _parse(self, envelope: CaptureEnvelope) -> ParseResult:
        doc = load_object(form_value(read_form(envelope.body), "param"), "param")
        last = doc.get("lastResult")
        if last is None:
            raise MalformedBody("missing_field", "param has no lastResult")
        if not isinstance(last, dict):
            raise MalformedBody("bad_shape", "param.lastResult is not an object")
        waybill = as_text(last.get("nu")).strip()
        com = next(
            (c for c in (as_text(last.get("com")), as_text(doc.get("comNew"))) if c.strip()),
            as_text(doc.get("comOld")),
        )
        courier = kdniao_style(KUAIDI100, com) if com.strip() else ""
        problem = waybill_problem(waybill, courier)
        if problem is not None:
            raise MalformedBody(problem.reason, f"lastResult: {problem.message}")
        data = last.get("data")
        if data is not None and not isinstance(data, list):
            raise MalformedBody("bad_shape", "lastResult.data is not an array")

        result = ParseResult()
        updates = Updates(FEED, envelope.received_at)
        traces = self._traces(data or [], waybill, result.rejected)
        latest = latest_position([t.time.at for t in traces])
        state = as_text(last.get("state")).strip()
        for position, trace in enumerate(traces):
            updates.add_scan(
                _scan(trace, waybill, courier, state if position == latest else None, envelope)
            )
        for kind, code, message in _alerts(doc, state):
            updates.alert(waybill, courier, kind, code, mask_text(message))
        result.updates = updates.build()
        return result

    def _traces(self, data: list[Any], waybill: str, rejected: list[Rejected]) -> list[_Trace]:
        """The trace in time order (Kuaidi100 sends it newest first)."""
        traces: list[_Trace] = []
        for index in range(len(data) - 1, -1, -1):
            value = data[index]
            if not isinstance(value, dict):
                rejected.append(Rejected("bad_shape", f"data[{index}] is not an object", waybill))
                continue
            time_text = as_text(value.get("ftime")) or as_text(value.get("time"))
            if not time_text.strip():
                rejected.append(Rejected("missing_field", f"data[{index}] has no time", waybill))
                continue
            when = try_event_time(time_text, self.config.timezone)
            if isinstance(when, str):
                rejected.append(Rejected("bad_time", f"data[{index}]: {when}", waybill))
                continue
            code = as_text(value.get("statusCode")).strip()
            if not code or code not in STATES:
                code = STATUS_NAMES.get(as_text(value.get("status")).strip(), code)
            city = city_from_area(as_text(value.get("areaName"))) or normalise_city(
                as_text(value.get("location")) or None
            )
            traces.append(_Trace(when, as_text(value.get("context")), code, city))
        return traces

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        """``{"result":true,"returnCode":"200","message":"成功"}``, or false with the error."""
        if error is None:
            return Acknowledgement(200, dumps(_ACK_OK))
        body = {
            "result": False,
            "returnCode": str(error.http_status),
            "message": mask_text(error.message),
        }
        return Acknowledgement(error.http_status, dumps(body))


def _scan(
    trace: _Trace, waybill: str, courier: str, state: str | None, envelope: CaptureEnvelope
) -> Scan:
    facts = read_text(trace.text)
    row = trace_row(trace.code)
    code: str | None = trace.code
    if row is not None:
        status, rule = row
    else:
        check = STATE_CHECK.get(state) if state is not None else None
        status, rule, code = status_from_text(facts, check, state, trace.code or None)
    return make_scan(
        feed=FEED,
        waybill=waybill,
        courier=courier,
        when=trace.time,
        received_at=envelope.received_at,
        status=status,
        rule=rule,
        code=code,
        text=trace.text,
        facts=facts,
        city=trace.city,
    )


def _alerts(doc: dict[str, Any], state: str) -> list[tuple[CourierAlertKind, str, str]]:
    """(kind, courier_code, message) of the push's monitoring alerts."""
    out: list[tuple[CourierAlertKind, str, str]] = []
    message = as_text(doc.get("message"))
    if as_text(doc.get("status")).strip() == "abort":
        out.extend((kind, "abort", message) for needle, kind in ABORT_MESSAGES if needle in message)
    if state in ALERTS:
        out.append((ALERTS[state], state, _STATE_LABELS[state]))
    return out
