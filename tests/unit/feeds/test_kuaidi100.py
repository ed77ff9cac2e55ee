"""Kuaidi100 pushes: sign, state tables, newest-first traces, abort alerts, acknowledgement."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import orjson
import pytest

from waybill_watch.domain.types import CourierAlertKind, SignType, Status
from waybill_watch.feeds.base import (
    FeedConfig,
    MalformedBody,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)
from waybill_watch.feeds.encode import kuaidi100_push
from waybill_watch.feeds.kuaidi100 import Kuaidi100Feed
from waybill_watch.feeds.kuaidi100_codes import STATES, STATUS_NAMES

from .helpers import RECEIVED_AT, SHANGHAI, env, ids, only_update, raw_env
from .vectors import KUAIDI100_PARAM, KUAIDI100_SALT, KUAIDI100_SIGN

FEED = Kuaidi100Feed()
NEUTRAL = "快件状态已更新"


def _data(time: str, text: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"context": text, "time": time, "ftime": time, **extra}
    if code is not None:
        out["statusCode"] = code
    return out


def _push(data: list[dict], state: str = "0", com: str = "zhongtong", **kwargs: Any):
    result = {"state": state, "com": com, "nu": "ZT2", "data": data}
    return env("kuaidi100", kuaidi100_push(result, None, **kwargs))


def _scan_of(code: str | None, text: str = NEUTRAL, **extra: Any):
    update = only_update(FEED.parse(_push([_data("2024-05-06 09:15:00", text, code, **extra)])))
    return update.scans[0]


class TestSign:
    keyed = Kuaidi100Feed(FeedConfig(secret=KUAIDI100_SALT))
    body = f"param={quote_plus(KUAIDI100_PARAM)}&sign={KUAIDI100_SIGN}".encode()

    def test_reference_vector_independently(self) -> None:
        digest = hashlib.md5((KUAIDI100_PARAM + KUAIDI100_SALT).encode()).hexdigest().upper()
        assert digest == KUAIDI100_SIGN

    def test_verify(self) -> None:
        self.keyed.verify({}, self.body)
        self.keyed.verify(
            {}, self.body.replace(KUAIDI100_SIGN.encode(), KUAIDI100_SIGN.lower().encode())
        )

    def test_wrong_missing_unsigned(self) -> None:
        with pytest.raises(SignatureInvalid):
            Kuaidi100Feed(FeedConfig(secret="other")).verify({}, self.body)
        with pytest.raises(SignatureMissing):
            self.keyed.verify({}, f"param={quote_plus(KUAIDI100_PARAM)}".encode())
        with pytest.raises(UnsignedNotAllowed):
            Kuaidi100Feed().verify({}, self.body)
        Kuaidi100Feed(FeedConfig(allow_unsigned=True)).verify({}, self.body)

    def test_encoder_signs(self) -> None:
        body, _ = kuaidi100_push({"com": "yunda", "nu": "1", "data": []}, "s")
        Kuaidi100Feed(FeedConfig(secret="s")).verify({}, body)


def test_reference_push() -> None:
    body = f"param={quote_plus(KUAIDI100_PARAM)}&sign={KUAIDI100_SIGN}"
    update = only_update(FEED.parse(raw_env("kuaidi100", body)))
    assert (update.waybill, update.courier) == ("ZT0000000000002", "ZTO")
    assert [(s.status, s.courier_code) for s in update.scans] == [
        (Status.PICKED_UP, "1"),
        (Status.OUT_FOR_DELIVERY, "5"),
    ]
    assert update.scans[0].event_time == datetime(2024, 5, 5, 18, 1, tzinfo=SHANGHAI)
    assert {s.received_at for s in update.scans} == {RECEIVED_AT}


KUAIDI100_ROWS: list[tuple[str, Status, SignType | None]] = [
    ("0", Status.IN_TRANSIT, None),
    ("1001", Status.IN_TRANSIT, None),
    ("1002", Status.IN_TRANSIT, None),
    ("1003", Status.IN_TRANSIT, None),
    ("7", Status.IN_TRANSIT, None),
    ("1", Status.PICKED_UP, None),
    ("103", Status.PICKED_UP, None),
    ("101", Status.INFO_RECEIVED, None),
    ("102", Status.INFO_RECEIVED, None),
    ("5", Status.OUT_FOR_DELIVERY, None),
    ("501", Status.AVAILABLE_FOR_PICKUP, None),
    ("3", Status.DELIVERED, SignType.UNKNOWN),
    ("301", Status.DELIVERED, SignType.RECIPIENT),
    ("302", Status.DELIVERED, SignType.RECIPIENT),
    ("303", Status.DELIVERED, SignType.PROXY),
    ("304", Status.DELIVERED, SignType.LOCKER),
    ("6", Status.RETURNING, None),
    ("4", Status.RETURNED, None),
    ("401", Status.EXCEPTION, None),
    ("14", Status.REJECTED, None),
    ("203", Status.REJECTED, None),
    ("2", Status.EXCEPTION, None),
    ("204", Status.FAILED_ATTEMPT, None),
    ("206", Status.FAILED_ATTEMPT, None),
    ("207", Status.EXCEPTION, None),
    ("208", Status.EXCEPTION, None),
    ("209", Status.EXCEPTION, None),
    ("210", Status.EXCEPTION, None),
    ("8", Status.CUSTOMS, None),
    ("10", Status.CUSTOMS, None),
    ("11", Status.CUSTOMS, None),
    ("12", Status.CUSTOMS, None),
    ("13", Status.EXCEPTION, None),
]


@pytest.mark.parametrize(("code", "status", "sign_type"), KUAIDI100_ROWS)
def test_state_code_rows(code: str, status: Status, sign_type: SignType | None) -> None:
    scan = _scan_of(code)
    assert (scan.status, scan.sign_type, scan.courier_code) == (status, sign_type, code)


def test_table_has_exactly_the_documented_rows() -> None:
    assert set(STATES) == {row[0] for row in KUAIDI100_ROWS}


@pytest.mark.parametrize(("name", "code"), sorted(STATUS_NAMES.items()))
def test_status_names_map_to_their_code(name: str, code: str) -> None:
    scan = _scan_of(None, "快件已到达【杭州转运中心】", status=name)
    if code in STATES:
        assert (scan.status, scan.courier_code) == (STATES[code][0], code)
    else:  # the timeout alert codes say nothing about the scan: the text decides
        assert scan.status is Status.IN_TRANSIT


@pytest.mark.parametrize("code", ["201", "202", "205"])
def test_alert_codes_on_a_trace_read_the_text(code: str) -> None:
    assert _scan_of(code, "您的快件已存放至【丰巢智能柜】").status is Status.AVAILABLE_FOR_PICKUP


def test_304_station_from_text() -> None:
    assert _scan_of("304", "已在【文一路菜鸟驿站】取件").sign_type is SignType.STATION


@pytest.mark.parametrize(
    ("state", "text", "status"),
    [
        ("3", NEUTRAL, Status.DELIVERED),
        ("3", "快件已到达【杭州转运中心】", Status.DELIVERED),
        ("5", NEUTRAL, Status.OUT_FOR_DELIVERY),
        ("5", "快件已到达【杭州转运中心】", Status.IN_TRANSIT),
        ("0", "已签收，签收人是【本人】", Status.DELIVERED),
        ("202", NEUTRAL, Status.IN_TRANSIT),
    ],
)
def test_text_only_traces_use_state_for_the_latest(state: str, text: str, status: Status) -> None:
    data = [_data("2024-05-06 09:15:00", text), _data("2024-05-05 18:00:00", NEUTRAL)]
    first, latest = only_update(FEED.parse(_push(data, state=state))).scans
    assert latest.status is status
    assert first.status is Status.IN_TRANSIT


def test_newest_first_order_and_ids_stable() -> None:
    older = _data("2024-05-05 18:01:00", "快件已揽收", "1")
    newer = _data("2024-05-06 09:15:00", "快件正在派送中", "5")
    a = only_update(FEED.parse(_push([newer, older])))
    b = only_update(FEED.parse(_push([older])))
    c = only_update(FEED.parse(_push([older, newer, dict(newer)])))
    assert [s.status for s in a.scans] == [Status.PICKED_UP, Status.OUT_FOR_DELIVERY]
    assert ids(b.scans)[0] == ids(a.scans)[0]
    assert ids(c.scans) == ids(a.scans)


def test_city_from_area_name_or_text() -> None:
    assert _scan_of("0", areaName="浙江,杭州市").city == "杭州"
    assert _scan_of("0", areaName="北京市").city == "北京"
    assert _scan_of("0", "快件已到达杭州市").city == "杭州"
    assert _scan_of("0").city is None


@pytest.mark.parametrize(
    ("com", "courier"),
    [("yuantong", "YTO"), ("shunfeng", "SF"), ("jtexpress", "JTSD"), ("foo", "FOO")],
)
def test_courier_codes(com: str, courier: str) -> None:
    update = only_update(FEED.parse(_push([_data("2024-05-06 09:15:00", "x", "0")], com=com)))
    assert update.courier == courier


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("3天查询无记录", CourierAlertKind.NO_FIRST_SCAN),
        ("60天无变化", CourierAlertKind.TRANSIT_STALL),
    ],
)
def test_abort_messages_are_alerts(message: str, kind: CourierAlertKind) -> None:
    update = only_update(FEED.parse(_push([], status="abort", message=message)))
    [alert] = update.alerts
    assert (alert.kind, alert.courier_code, alert.message) == (kind, "abort", message)
    assert alert.reported_at == alert.received_at == RECEIVED_AT


def test_other_monitoring_states_are_not_alerts() -> None:
    assert FEED.parse(_push([], status="abort", message="其他原因")).updates == []
    assert FEED.parse(_push([], status="polling", message="3天查询无记录")).updates == []


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("201", CourierAlertKind.DELIVERY_OVERDUE),
        ("202", CourierAlertKind.TRANSIT_STALL),
        ("205", CourierAlertKind.LOCKER_UNCOLLECTED),
    ],
)
def test_timeout_states_are_alerts(state: str, kind: CourierAlertKind) -> None:
    update = only_update(FEED.parse(_push([_data("2024-05-06 09:15:00", "x")], state=state)))
    assert [a.kind for a in update.alerts] == [kind]


def test_bad_time_rejected() -> None:
    data = [_data("2024-05-06 09:15:00", "派送中", "5"), _data("2024-02-30 10:00:00", "揽收", "1")]
    result = FEED.parse(_push(data))
    assert [r.reason for r in result.rejected] == ["bad_time"]
    assert len(only_update(result).scans) == 1


def _param_body(param: object) -> str:
    text = param if isinstance(param, str) else orjson.dumps(param).decode()
    return f"param={quote_plus(text)}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "bad_form"),
        ("sign=abc", "missing_field"),
        (_param_body("not json"), "bad_json"),
        (_param_body([]), "bad_shape"),
        (_param_body({"status": "polling"}), "missing_field"),
        (_param_body({"lastResult": 3}), "bad_shape"),
        (_param_body({"lastResult": {"com": "yunda"}}), "missing_field"),
        (_param_body({"lastResult": {"nu": "1"}}), "missing_field"),
        (_param_body({"lastResult": {"nu": "1", "com": "x", "data": {}}}), "bad_shape"),
        (_param_body({"lastResult": {"nu": "1" * 65, "com": "x"}}), "bad_waybill"),
    ],
)
def test_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        FEED.parse(raw_env("kuaidi100", body))
    assert err.value.reason == reason


def test_acknowledge() -> None:
    ok = FEED.acknowledge(None, RECEIVED_AT)
    assert ok.status == 200
    assert orjson.loads(ok.body) == {"result": True, "returnCode": "200", "message": "成功"}
    refused = FEED.acknowledge(MalformedBody("bad_json", "param is not valid JSON"), RECEIVED_AT)
    assert refused.status == 400
    assert orjson.loads(refused.body) == {
        "result": False,
        "returnCode": "400",
        "message": "param is not valid JSON",
    }
