"""Encoders used by the simulator: provider shapes, signing, determinism."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson

from waybill_watch.feeds.encode import (
    aftership_push,
    envelope,
    kdniao_push,
    kuaidi100_push,
    local_time_text,
    merchant_push,
    track17_push,
)

from .helpers import RECEIVED_AT, trace, waybill


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


def test_kdniao_push_shape_and_101_stripping() -> None:
    item = waybill("ZT1", [trace("2024-05-06 09:15:00", "派送中", "202", "杭州市")], StateEx="202")
    form102 = _form(kdniao_push([item], None)[0])
    form101 = _form(kdniao_push([item], None, 101)[0])
    doc102, doc101 = orjson.loads(form102["RequestData"]), orjson.loads(form101["RequestData"])
    assert form102["RequestType"] == "102" and "DataSign" not in form102
    assert doc102["Count"] == "1" and doc102["PushTime"] == "2024-05-06 09:15:00"
    assert doc102["Data"][0]["StateEx"] == "202" and doc102["Data"][0]["Success"] is True
    assert doc102["Data"][0]["Traces"][0]["Action"] == "202"
    assert "StateEx" not in doc101["Data"][0]
    assert set(doc101["Data"][0]["Traces"][0]) == {"AcceptTime", "AcceptStation", "Remark"}
    assert item["Traces"][0]["Action"] == "202"  # the caller's dicts are left alone


def test_kuaidi100_push_shape() -> None:
    form = _form(kuaidi100_push({"nu": "1", "com": "yunda"}, "salt", status="abort")[0])
    param = orjson.loads(form["param"])
    assert param["status"] == "abort" and param["lastResult"]["nu"] == "1"
    assert len(form["sign"]) == 32 and form["sign"].isupper()


def test_json_pushes_and_headers() -> None:
    body, headers = track17_push({"number": "1"}, None)
    assert orjson.loads(body) == {"event": "TRACKING_UPDATED", "data": {"number": "1"}}
    assert "sign" not in headers and headers["content-type"] == "application/json"
    a1, _ = aftership_push({"tracking_number": "1"}, None)
    a2, _ = aftership_push({"tracking_number": "1"}, None)
    a3, _ = aftership_push({"tracking_number": "2"}, None)
    assert a1 == a2
    assert orjson.loads(a1)["event_id"] != orjson.loads(a3)["event_id"]
    assert orjson.loads(aftership_push({}, None, event_id="e", ts=5)[0])["ts"] == 5


def test_merchant_push_single_or_array() -> None:
    order = {"type": "shipped", "waybill": "1", "occurred_at": "2024-05-06T09:15:00+08:00"}
    assert isinstance(orjson.loads(merchant_push(order, None)[0]), dict)
    assert isinstance(orjson.loads(merchant_push([order], None)[0]), list)


def test_local_time_text_and_envelope() -> None:
    assert local_time_text(datetime(2024, 5, 6, 1, 15, tzinfo=UTC)) == "2024-05-06 09:15:00"
    env = envelope("kdniao", kdniao_push([], "k"), RECEIVED_AT)
    assert env.feed == "kdniao" and env.content_type.startswith("application/x-www")
    assert env.received_at == RECEIVED_AT and env.body.startswith("RequestData=")
