"""Encoders: build provider-format request bodies (and signature headers) for the simulator
and the tests. Each returns ``(body, headers)`` with lower-case header names, signed when a
secret is given, exactly as the provider would send it.

Input shapes are the providers' own JSON shapes (reference sheet), as plain dicts:

* ``kdniao_push(waybills)``: ``Data[]`` elements, e.g. ``{"ShipperCode": "ZTO", "LogisticCode":
  "ZT1", "State": "2", "StateEx": "202", "Traces": [{"AcceptTime": "2024-05-06 09:15:00",
  "AcceptStation": "快件正在派送中", "Action": "202", "Location": "杭州市"}]}``.
  ``EBusinessID``/``Success``/``Reason`` are filled in; with ``request_type=101`` the 102-only
  keys (``StateEx``, ``Location``, trace ``Action``/``Location``) are dropped.
* ``kuaidi100_push(last_result)``: the ``lastResult`` object (``com``, ``nu``, ``state``,
  ``data`` newest first with ``context``/``ftime``/``status``/``statusCode``).
* ``track17_push(data)``: the ``data`` object (``number``, ``carrier``, ``track_info``…).
* ``aftership_push(msg)``: the tracking object (``tracking_number``, ``slug``, ``tag``,
  ``checkpoints``…).
* ``canonical_push(events)`` / ``merchant_push(orders)``: wire models or dicts of them.

``local_time_text(dt)`` formats a datetime the way Kdniao/Kuaidi100 write times.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from waybill_watch.domain.ids import scan_event_id
from waybill_watch.domain.types import Scan
from waybill_watch.feeds.signing import (
    OWN_SIGNATURE_HEADER,
    hmac_sha256_base64,
    kdniao_data_sign,
    kuaidi100_sign,
    track17_sign,
)
from waybill_watch.jsonio import dumps
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import TrackingEvent
from waybill_watch.timefmt import DEFAULT_ZONE, format_rfc3339, parse_rfc3339, zone

FORM_TYPE = "application/x-www-form-urlencoded;charset=utf-8"
JSON_TYPE = "application/json"
Encoded = tuple[bytes, dict[str, str]]

_KDNIAO_102_ONLY = ("StateEx", "Location")
_KDNIAO_TRACE_102_ONLY = ("Action", "Location")
_AFTERSHIP_NAMESPACE = uuid.UUID("7d0c8f0e-5a7a-4f0e-9a43-6b1d0a8c2f51")


def local_time_text(value: datetime, tz: str = DEFAULT_ZONE) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in zone ``tz`` (naive provider time format)."""
    return value.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def kdniao_push(
    waybills: Sequence[Mapping[str, Any]],
    app_key: str | None,
    request_type: int = 102,
    *,
    ebusiness_id: str = "1000001",
    push_time: str | None = None,
) -> Encoded:
    """A Kdniao push form body (``RequestData``, ``DataSign`` when keyed, ``RequestType``)."""
    data: list[dict[str, Any]] = []
    for source in waybills:
        item: dict[str, Any] = {"EBusinessID": ebusiness_id, "Success": True, "Reason": ""}
        item.update(source)
        traces = [dict(t) for t in item.get("Traces", [])]
        if request_type == 101:
            for key in _KDNIAO_102_ONLY:
                item.pop(key, None)
            for trace in traces:
                for key in _KDNIAO_TRACE_102_ONLY:
                    trace.pop(key, None)
        item["Traces"] = traces
        data.append(item)
    if push_time is None:
        times = [str(t.get("AcceptTime", "")) for w in data for t in w["Traces"]]
        push_time = max(times, default="")
    document = {
        "EBusinessID": ebusiness_id,
        "PushTime": push_time,
        "Count": str(len(data)),
        "Data": data,
    }
    request_data = _text(dumps(document))
    form = [("RequestData", request_data)]
    if app_key is not None:
        form.append(("DataSign", kdniao_data_sign(request_data, app_key)))
    form.append(("RequestType", str(request_type)))
    return urlencode(form).encode("ascii"), {"content-type": FORM_TYPE}


def kuaidi100_push(
    last_result: Mapping[str, Any],
    salt: str | None,
    *,
    status: str = "polling",
    message: str = "",
    auto_check: str = "0",
) -> Encoded:
    """A Kuaidi100 subscription push form body (``param`` and, when salted, ``sign``)."""
    param = {
        "status": status,
        "billstatus": "",
        "message": message,
        "autoCheck": auto_check,
        "comOld": "",
        "comNew": "",
        "lastResult": dict(last_result),
    }
    param_text = _text(dumps(param))
    form = [("param", param_text)]
    if salt is not None:
        form.append(("sign", kuaidi100_sign(param_text, salt)))
    return urlencode(form).encode("ascii"), {"content-type": FORM_TYPE}


def track17_push(
    data: Mapping[str, Any], key: str | None, *, event: str = "TRACKING_UPDATED"
) -> Encoded:
    """A 17TRACK webhook JSON body with its ``sign`` header when keyed."""
    body = dumps({"event": event, "data": dict(data)})
    headers = {"content-type": JSON_TYPE}
    if key is not None:
        headers["sign"] = track17_sign(body, key)
    return body, headers


def aftership_push(
    msg: Mapping[str, Any],
    secret: str | None,
    *,
    event: str = "tracking_update",
    event_id: str | None = None,
    ts: int | None = None,
) -> Encoded:
    """An AfterShip webhook body. ``event_id`` defaults to a UUID derived from the content, so
    a simulator run is reproducible."""
    payload: dict[str, Any] = {"event": event}
    if event_id is None:
        event_id = str(uuid.uuid5(_AFTERSHIP_NAMESPACE, _text(dumps([event, dict(msg), ts]))))
    payload["event_id"] = event_id
    if ts is not None:
        payload["ts"] = ts
    payload["msg"] = dict(msg)
    body = dumps(payload)
    headers = {"content-type": JSON_TYPE}
    if secret is not None:
        headers["aftership-hmac-sha256"] = hmac_sha256_base64(secret, body)
    return body, headers


def _signed_json(value: Any, secret: str | None) -> Encoded:
    body = dumps(value)
    headers = {"content-type": JSON_TYPE}
    if secret is not None:
        headers[OWN_SIGNATURE_HEADER] = hmac_sha256_base64(secret, body)
    return body, headers


def canonical_event(value: TrackingEvent | Scan | Mapping[str, Any]) -> dict[str, Any]:
    """One canonical event as JSON data; a dict without ``event_id`` gets the deterministic one."""
    if isinstance(value, Scan):
        value = TrackingEvent.from_scan(value)
    if isinstance(value, TrackingEvent):
        out: dict[str, Any] = value.model_dump(mode="json")
        return out
    item = dict(value)
    if not item.get("event_id"):
        when = item["event_time"]
        at = when if isinstance(when, datetime) else parse_rfc3339(str(when))
        item["event_id"] = scan_event_id(
            str(item["waybill"]),
            str(item["courier"]),
            at.astimezone(UTC).isoformat(),
            "",
            str(item.get("description", "")),
        )
    for key in ("event_time", "received_at"):
        if isinstance(item.get(key), datetime):
            item[key] = format_rfc3339(item[key])
    return item


def canonical_push(
    events: Sequence[TrackingEvent | Scan | Mapping[str, Any]], secret: str | None
) -> Encoded:
    """A canonical-feed body: a JSON array of tracking events, HMAC-signed when keyed."""
    return _signed_json([canonical_event(e) for e in events], secret)


def merchant_push(
    orders: OrderEvent | Mapping[str, Any] | Sequence[OrderEvent | Mapping[str, Any]],
    secret: str | None,
) -> Encoded:
    """A merchant-feed body: one order event (object) or several (array), HMAC-signed."""

    def one(order: OrderEvent | Mapping[str, Any]) -> Any:
        if isinstance(order, OrderEvent):
            return order.model_dump(mode="json")
        return dict(order)

    if isinstance(orders, OrderEvent | Mapping):
        return _signed_json(one(orders), secret)
    return _signed_json([one(o) for o in orders], secret)


def envelope(
    feed: str, encoded: Encoded, received_at: datetime, *, keep_headers: bool = True
) -> CaptureEnvelope:
    """The capture envelope ingest would write for this request."""
    body, headers = encoded
    return CaptureEnvelope.model_validate(
        {
            "feed": feed,
            "received_at": received_at,
            "content_type": headers.get("content-type", ""),
            "headers": headers if keep_headers else {},
            "body": body.decode("utf-8"),
        }
    )
