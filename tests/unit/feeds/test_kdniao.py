"""Kdniao pushes: signature, contract §5.1 mapping, text inference, identity, alerts, acks."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

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
from waybill_watch.feeds.encode import kdniao_push
from waybill_watch.feeds.kdniao import KdniaoFeed
from waybill_watch.feeds.kdniao_codes import ACTIONS

from .helpers import RECEIVED_AT, SHANGHAI, ids, kd_env, only_update, raw_env, trace, waybill
from .vectors import KDNIAO_APP_KEY, KDNIAO_DATA_SIGN, KDNIAO_MD5_HEX, KDNIAO_REQUEST_DATA

FEED = KdniaoFeed()
T1 = "2024-05-05 18:01:00"
T2 = "2024-05-06 09:15:00"
T3 = "2024-05-06 11:30:00"
NEUTRAL = "快件状态已更新"  # a text no rule recognises


def _wire(request_data: str, data_sign: str, request_type: str = "102") -> bytes:
    return (
        f"RequestData={quote_plus(request_data)}&DataSign={quote_plus(data_sign)}"
        f"&RequestType={request_type}"
    ).encode()


def _one_scan(text: str, action: str | None = None, request_type: int = 102, **extra: object):
    result = FEED.parse(kd_env([waybill("ZT1", [trace(T2, text, action)], **extra)], request_type))
    update = only_update(result)
    assert len(update.scans) == 1
    return update.scans[0]


# --- DataSign (reference §1.5) ----------------------------------------------------------------
class TestDataSign:
    keyed = KdniaoFeed(FeedConfig(secret=KDNIAO_APP_KEY))

    def test_reference_vector_independently(self) -> None:
        md5_hex = hashlib.md5((KDNIAO_REQUEST_DATA + KDNIAO_APP_KEY).encode()).hexdigest()
        assert md5_hex == KDNIAO_MD5_HEX
        assert base64.b64encode(md5_hex.encode()).decode() == KDNIAO_DATA_SIGN

    def test_verify_accepts_reference_wire_form(self) -> None:
        body = _wire(KDNIAO_REQUEST_DATA, KDNIAO_DATA_SIGN)
        assert b"DataSign=ZGRlMTJjYzdjYWViMGIwYWM0MzRhN2I4MWE0YWE4ZTY%3D&RequestType=102" in body
        self.keyed.verify({}, body)

    def test_reference_push_reads_as_documented(self) -> None:
        update = only_update(
            FEED.parse(raw_env("kdniao", _wire(KDNIAO_REQUEST_DATA, "x").decode()))
        )
        assert (update.waybill, update.courier) == ("ZT0000000000001", "ZTO")
        assert [s.status for s in update.scans] == [Status.PICKED_UP, Status.OUT_FOR_DELIVERY]
        assert [s.city for s in update.scans] == ["上海", "杭州"]
        assert update.scans[1].event_time == datetime(2024, 5, 6, 9, 15, tzinfo=SHANGHAI)

    def test_wrong_key_is_invalid(self) -> None:
        feed = KdniaoFeed(FeedConfig(secret="another-key"))
        with pytest.raises(SignatureInvalid) as err:
            feed.verify({}, _wire(KDNIAO_REQUEST_DATA, KDNIAO_DATA_SIGN))
        assert err.value.http_status == 403

    def test_tampered_data_is_invalid(self) -> None:
        tampered = KDNIAO_REQUEST_DATA.replace("ZT0000000000001", "ZT0000000000002")
        with pytest.raises(SignatureInvalid):
            self.keyed.verify({}, _wire(tampered, KDNIAO_DATA_SIGN))

    def test_missing_signature(self) -> None:
        body = f"RequestData={quote_plus(KDNIAO_REQUEST_DATA)}&RequestType=102".encode()
        with pytest.raises(SignatureMissing) as err:
            self.keyed.verify({}, body)
        assert err.value.http_status == 401
        with pytest.raises(SignatureMissing):
            self.keyed.verify({}, _wire(KDNIAO_REQUEST_DATA, ""))

    def test_no_secret_refused_unless_allowed(self) -> None:
        body = _wire(KDNIAO_REQUEST_DATA, "whatever")
        with pytest.raises(UnsignedNotAllowed):
            KdniaoFeed().verify({}, body)
        KdniaoFeed(FeedConfig(allow_unsigned=True)).verify({}, body)

    def test_plus_in_json_survives_single_decoding(self) -> None:
        data = '{"Data":[],"Note":"+86 a+b"}'
        sign = base64.b64encode(hashlib.md5((data + "k").encode()).hexdigest().encode()).decode()
        body = _wire(data, sign)
        assert b"%2B86" in body
        KdniaoFeed(FeedConfig(secret="k")).verify({}, body)

    def test_double_encoded_datasign_is_accepted(self) -> None:
        body = _wire(KDNIAO_REQUEST_DATA, quote(KDNIAO_DATA_SIGN, safe=""))
        assert b"%253D" in body
        self.keyed.verify({}, body)

    def test_unencoded_request_data_is_verified_as_sent(self) -> None:
        data = '{"Data":[],"Note":"a+b"}'
        sign = base64.b64encode(hashlib.md5((data + "k").encode()).hexdigest().encode()).decode()
        KdniaoFeed(FeedConfig(secret="k")).verify(
            {}, f"RequestData={data}&DataSign={quote_plus(sign)}&RequestType=102".encode()
        )

    def test_encoder_signs_like_the_reference(self) -> None:
        body, headers = kdniao_push([waybill("ZT1", [trace(T1, "快件已揽收", "1")])], "k")
        assert headers["content-type"].startswith("application/x-www-form-urlencoded")
        KdniaoFeed(FeedConfig(secret="k")).verify({}, body)
        with pytest.raises(SignatureInvalid):
            KdniaoFeed(FeedConfig(secret="other")).verify({}, body)


# --- contract §5.1 mapping table (expected values written out literally) ------------------------
CONTRACT_ROWS: list[tuple[str, Status, SignType | None]] = [
    ("10", Status.INFO_RECEIVED, None),
    ("1", Status.PICKED_UP, None),
    ("2", Status.IN_TRANSIT, None),
    ("201", Status.IN_TRANSIT, None),
    ("204", Status.IN_TRANSIT, None),
    ("205", Status.IN_TRANSIT, None),
    ("206", Status.IN_TRANSIT, None),
    ("5", Status.IN_TRANSIT, None),
    ("202", Status.OUT_FOR_DELIVERY, None),
    ("419", Status.OUT_FOR_DELIVERY, None),
    ("211", Status.AVAILABLE_FOR_PICKUP, None),
    ("3", Status.DELIVERED, SignType.UNKNOWN),
    ("301", Status.DELIVERED, SignType.RECIPIENT),
    ("302", Status.DELIVERED, SignType.RECIPIENT),
    ("418", Status.DELIVERED, SignType.RECIPIENT),
    ("304", Status.DELIVERED, SignType.PROXY),
    ("311", Status.DELIVERED, SignType.LOCKER),
    ("4", Status.EXCEPTION, None),
    ("413", Status.EXCEPTION, None),
    ("414", Status.EXCEPTION, None),
    ("415", Status.EXCEPTION, None),
    ("420", Status.EXCEPTION, None),
    ("421", Status.EXCEPTION, None),
    ("422", Status.EXCEPTION, None),
    ("423", Status.EXCEPTION, None),
    ("604", Status.EXCEPTION, None),
    ("405", Status.FAILED_ATTEMPT, None),
    ("416", Status.FAILED_ATTEMPT, None),
    ("404", Status.REJECTED, None),
    ("407", Status.RETURNING, None),
    ("406", Status.RETURNED, None),
    ("6", Status.CUSTOMS, None),
    ("601", Status.CUSTOMS, None),
    ("602", Status.CUSTOMS, None),
    ("603", Status.CUSTOMS, None),
]


@pytest.mark.parametrize(("action", "status", "sign_type"), CONTRACT_ROWS)
def test_contract_action_rows(action: str, status: Status, sign_type: SignType | None) -> None:
    scan = _one_scan(NEUTRAL, action)
    assert (scan.status, scan.sign_type, scan.courier_code) == (status, sign_type, action)


def test_table_has_exactly_the_contract_rows() -> None:
    assert set(ACTIONS) == {row[0] for row in CONTRACT_ROWS}


@pytest.mark.parametrize(("action", "row"), sorted(ACTIONS.items()))
def test_every_table_row_reaches_the_scan(action: str, row: tuple) -> None:
    assert _one_scan(NEUTRAL, action).status is row[0]


@pytest.mark.parametrize(
    ("action", "text", "sign_type"),
    [
        ("3", "已签收，签收人是【门卫】", SignType.PROXY),
        ("3", "已签收，签收人是【本人】", SignType.RECIPIENT),
        ("301", "快件已被【丰巢智能柜】签收", SignType.LOCKER),
        ("302", "已签收，签收人：同事", SignType.PROXY),
        ("311", "已从【文一路菜鸟驿站】取件", SignType.STATION),
        ("311", "已从【丰巢】取出", SignType.LOCKER),
        ("304", "已签收，签收人是【本人】", SignType.PROXY),
        ("418", "快件已被【XX代收点】取出", SignType.STATION),
    ],
)
def test_sign_type_from_text_on_delivered_codes(
    action: str, text: str, sign_type: SignType
) -> None:
    assert _one_scan(text, action).sign_type is sign_type


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("417", Status.EXCEPTION),  # unknown sub-state of 4
        ("220", Status.IN_TRANSIT),  # unknown sub-state of 2
        ("305", Status.DELIVERED),
    ],
)
def test_unknown_codes_fall_back_to_their_first_digit(action: str, status: Status) -> None:
    assert _one_scan(NEUTRAL, action).status is status


@pytest.mark.parametrize("action", ["0", "401", "402", "403", "412", "", "9"])
def test_alert_and_unknown_codes_on_a_trace_read_the_text(action: str) -> None:
    assert _one_scan("快件已到达【杭州转运中心】", action).status is Status.IN_TRANSIT
    assert _one_scan("您的快件已存放至【丰巢智能柜】", action).status is Status.AVAILABLE_FOR_PICKUP


# --- RequestType 101: text inference ------------------------------------------------------------
TEXT_CASES: list[tuple[str, Status, SignType | None]] = [
    ("【上海青浦】的收件员【李四】已揽收", Status.PICKED_UP, None),
    ("【上海青浦公司】已收件", Status.PICKED_UP, None),
    ("快件已到达【杭州转运中心】", Status.IN_TRANSIT, None),
    ("【杭州转运中心】已发出，下一站【杭州西湖区】", Status.IN_TRANSIT, None),
    ("快件已发往【杭州市】", Status.IN_TRANSIT, None),
    ("快件离开【上海转运中心】，正在转运途中", Status.IN_TRANSIT, None),
    ("【杭州西湖区】的派件员【王五，13812345678】正在为您派件", Status.OUT_FOR_DELIVERY, None),
    ("快件正在派送中", Status.OUT_FOR_DELIVERY, None),
    ("您的快件已存放至【丰巢智能柜】，请凭取件码取件", Status.AVAILABLE_FOR_PICKUP, None),
    ("快件已到达【文一路菜鸟驿站】，请及时取件", Status.AVAILABLE_FOR_PICKUP, None),
    ("快件已放入快递柜，待取件", Status.AVAILABLE_FOR_PICKUP, None),
    ("已签收，签收人是【门卫】", Status.DELIVERED, SignType.PROXY),
    ("已签收，签收人是【本人】", Status.DELIVERED, SignType.RECIPIENT),
    ("快件已被【丰巢快递柜】签收", Status.DELIVERED, SignType.LOCKER),
    ("您的快件已在【文一路菜鸟驿站】签收", Status.DELIVERED, SignType.STATION),
    ("已签收，感谢使用中通快递", Status.DELIVERED, SignType.UNKNOWN),
    ("快件已由门卫代收", Status.DELIVERED, SignType.PROXY),
    ("收件人拒收，快件将退回", Status.REJECTED, None),
    ("快件退回中，正在返回寄件人", Status.RETURNING, None),
    ("退回件已签收", Status.RETURNED, None),
    ("问题件：收件地址不详", Status.EXCEPTION, None),
    ("快件异常，请联系客服", Status.EXCEPTION, None),
    ("派件异常，电话无人接听，明日再派", Status.FAILED_ATTEMPT, None),
    ("未妥投，收件人不在", Status.FAILED_ATTEMPT, None),
    ("快件正在清关", Status.CUSTOMS, None),
    ("商家已下单，等待揽收", Status.INFO_RECEIVED, None),
    (NEUTRAL, Status.IN_TRANSIT, None),  # nothing recognised, not the latest: in transit
]


@pytest.mark.parametrize(("text", "status", "sign_type"), TEXT_CASES)
def test_101_status_from_text(text: str, status: Status, sign_type: SignType | None) -> None:
    result = FEED.parse(kd_env([waybill("ZT1", [trace(T2, text), trace(T3, NEUTRAL)])], 101))
    scan = only_update(result).scans[0]
    assert (scan.status, scan.sign_type, scan.courier_code) == (status, sign_type, None)


def test_101_and_102_are_read_alike() -> None:
    traces = [trace(T1, "快件已揽收", "1", "上海市"), trace(T2, "快件正在派送中", "202", "杭州市")]
    u101 = only_update(FEED.parse(kd_env([waybill("ZT1", traces, StateEx="202")], 101)))
    u102 = only_update(FEED.parse(kd_env([waybill("ZT1", traces, StateEx="202")], 102)))
    assert [s.status for s in u101.scans] == [s.status for s in u102.scans]
    assert ids(u101.scans) == ids(u102.scans)
    assert [s.city for s in u102.scans] == ["上海", "杭州"]
    assert [s.city for s in u101.scans] == [None, None]  # no Location and no city in the text


@pytest.mark.parametrize(
    ("state", "text", "status", "code"),
    [
        ("3", NEUTRAL, Status.DELIVERED, "3"),
        ("3", "快件已到达【杭州转运中心】", Status.DELIVERED, "3"),
        ("3", "快件正在派送中", Status.OUT_FOR_DELIVERY, None),
        ("3", "您的快件已存放至【丰巢智能柜】", Status.AVAILABLE_FOR_PICKUP, None),
        ("4", "快件已到达【杭州转运中心】", Status.EXCEPTION, "4"),
        ("4", "已签收，签收人是【本人】", Status.DELIVERED, None),
        ("2", NEUTRAL, Status.IN_TRANSIT, "2"),
        ("1", NEUTRAL, Status.PICKED_UP, "1"),
        ("6", NEUTRAL, Status.CUSTOMS, "6"),
        ("", NEUTRAL, Status.IN_TRANSIT, None),
    ],
)
def test_101_state_cross_checks_the_latest_trace(
    state: str, text: str, status: Status, code: str | None
) -> None:
    push = [waybill("ZT1", [trace(T1, NEUTRAL), trace(T2, text)], State=state)]
    first, latest = only_update(FEED.parse(kd_env(push, 101))).scans
    assert (latest.status, latest.courier_code) == (status, code)
    assert first.status is Status.IN_TRANSIT  # the State never touches earlier traces


def test_state_delivered_sign_type_comes_from_text() -> None:
    scan = _one_scan("包裹已交由【门卫】", request_type=101, State="3")
    assert (scan.status, scan.sign_type) == (Status.DELIVERED, SignType.PROXY)


# --- location, site, signer ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("location", "text", "city", "site"),
    [
        ("杭州市", "快件已到达【杭州转运中心】", "杭州", "杭州转运中心"),
        ("杭州", "快件正在派送中", "杭州", None),
        (None, "快件已到达【浙江省杭州市西湖区文一路站】", "杭州", "浙江省杭州市西湖区文一路站"),
        (None, "快件已到达杭州市，发往【西湖区】", "杭州", "西湖区"),
        (None, "【北京市朝阳区】快件已揽收", "北京", "北京市朝阳区"),
        (None, "已签收，签收人是【张三】", None, None),
        (None, "【杭州西湖区】的派件员【王五】正在派件", None, "杭州西湖区"),
        (None, "快件已到达【菜鸟快递超市】", None, "菜鸟快递超市"),
    ],
)
def test_city_and_site(location: str | None, text: str, city: str | None, site: str | None) -> None:
    result = FEED.parse(kd_env([waybill("ZT1", [trace(T2, text, "2", location)])]))
    scan = only_update(result).scans[0]
    assert (scan.city, scan.site) == (city, site)


def test_signer_is_masked_and_description_verbatim() -> None:
    text = "已签收，签收人：张三丰，电话13812345678"
    scan = _one_scan(text, "301")
    assert scan.signer == "张**"
    assert scan.description == text
    assert _one_scan("已签收，签收人是【门卫】", "3").signer == "门卫"
    assert _one_scan("快件已揽收，收件员【张三】", "1").signer is None


# --- identity, duplicates, ordering -----------------------------------------------------------
def test_re_push_keeps_ids_and_received_at() -> None:
    first = [trace(T1, "快件已揽收", "1")]
    second = [*first, trace(T2, "快件正在派送中", "202")]
    later = datetime(2024, 5, 6, 12, 0, tzinfo=SHANGHAI)
    a = only_update(FEED.parse(kd_env([waybill("ZT1", first)])))
    b = only_update(FEED.parse(kd_env([waybill("ZT1", second)], received_at=later)))
    assert ids(b.scans)[0] == ids(a.scans)[0]
    assert len(set(ids(b.scans))) == 2
    assert {s.received_at for s in b.scans} == {later} and b.received_at == later
    assert a.scans[0].received_at == RECEIVED_AT


def test_duplicates_within_a_push_are_dropped() -> None:
    t = trace(T1, "快件已揽收", "1")
    update = only_update(FEED.parse(kd_env([waybill("ZT1", [t, dict(t), trace(T2, "派送中")])])))
    assert len(update.scans) == 2


def test_descending_traces_give_same_ids_in_time_order() -> None:
    traces = [
        trace(T1, "快件已揽收", "1"),
        trace(T2, "到达【杭州】", "2"),
        trace(T3, "派送中", "202"),
    ]
    up = only_update(FEED.parse(kd_env([waybill("ZT1", traces)])))
    down = only_update(FEED.parse(kd_env([waybill("ZT1", traces[::-1])])))
    assert ids(up.scans) == ids(down.scans)
    assert [s.event_time for s in down.scans] == sorted(s.event_time for s in down.scans)


def test_same_scan_different_time_spelling_same_id() -> None:
    a = _one_scan("快件已揽收", "1")
    b = only_update(
        FEED.parse(kd_env([waybill("ZT1", [trace(T2.replace(" ", "T"), "快件已揽收", "1")])]))
    ).scans[0]
    assert a.event_id == b.event_id


def test_multi_waybill_push() -> None:
    w1 = waybill("ZT1", [trace(T1, "快件已揽收", "1")])
    w2 = waybill("SF1", [trace(T2, "快件正在派送中", "202")], courier="SF")
    result = FEED.parse(kd_env([w1, w2]))
    assert [(u.waybill, u.courier) for u in result.updates] == [("ZT1", "ZTO"), ("SF1", "SF")]
    alone = only_update(FEED.parse(kd_env([w2])))
    assert ids(result.updates[1].scans) == ids(alone.scans)
    assert result.updates[0].scans[0].event_id != alone.scans[0].event_id


def test_same_waybill_twice_in_one_push_is_one_update() -> None:
    w1 = waybill("ZT1", [trace(T1, "快件已揽收", "1")])
    w2 = waybill("ZT1", [trace(T1, "快件已揽收", "1"), trace(T2, "派送中", "202")])
    assert len(only_update(FEED.parse(kd_env([w1, w2]))).scans) == 2


def test_timezone_setting_is_used() -> None:
    feed = KdniaoFeed(FeedConfig(timezone="UTC"))
    scan = only_update(feed.parse(kd_env([waybill("ZT1", [trace(T1, "快件已揽收", "1")])]))).scans[
        0
    ]
    assert scan.event_time == datetime(2024, 5, 5, 18, 1, tzinfo=UTC)


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("time", "reason"),
    [
        ("2024-02-30 10:00:00", "bad_time"),
        ("2024-13-01 10:00:00", "bad_time"),
        ("2024-05-06 25:00:00", "bad_time"),
        ("yesterday", "bad_time"),
        ("", "missing_field"),
    ],
)
def test_bad_trace_time_is_rejected_not_guessed(time: str, reason: str) -> None:
    push = [waybill("ZT1", [trace(time, "快件已揽收", "1"), trace(T2, "派送中", "202")])]
    result = FEED.parse(kd_env(push))
    assert [r.reason for r in result.rejected] == [reason]
    assert result.rejected[0].waybill == "ZT1"
    assert [s.status for s in only_update(result).scans] == [Status.OUT_FOR_DELIVERY]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "bad_form"),
        ("just some text", "bad_form"),
        ("RequestData=%FF%FE&RequestType=102", "bad_form"),
        ("RequestType=102&RequestType=102&RequestData=%7B%7D", "bad_form"),
        ("RequestData=%7B%7D", "missing_field"),
        ("RequestData=%7B%7D&RequestType=999", "unknown_request_type"),
        ("RequestType=102", "missing_field"),
        ("RequestData=not-json&RequestType=102", "bad_json"),
        ("RequestData=%5B1%5D&RequestType=101", "bad_shape"),
        ("RequestData=%7B%7D&RequestType=102", "missing_field"),
        ("RequestData=%7B%22Data%22%3A1%7D&RequestType=102", "bad_shape"),
    ],
)
def test_malformed_bodies(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        FEED.parse(raw_env("kdniao", body))
    assert err.value.reason == reason
    assert err.value.http_status == 400


def test_unreadable_waybills_are_rejected_others_kept() -> None:
    good = waybill("ZT1", [trace(T1, "快件已揽收", "1")])
    data = [
        "nope",
        {"ShipperCode": "ZTO", "Traces": []},
        {"ShipperCode": "ZTO", "LogisticCode": "X" * 65, "Traces": []},
        waybill("ZT2", "not-a-list"),  # type: ignore[arg-type]
        waybill("ZT3", ["not-an-object"]),  # type: ignore[list-item]
        good,
    ]
    request_data = orjson.dumps({"Data": data}).decode()
    result = FEED.parse(raw_env("kdniao", _wire(request_data, "x").decode()))
    assert [r.reason for r in result.rejected] == [
        "bad_shape",
        "missing_field",
        "bad_waybill",
        "bad_shape",
        "bad_shape",
    ]
    assert [u.waybill for u in result.updates] == ["ZT1"]


def test_error_messages_mask_personal_data() -> None:
    with pytest.raises(MalformedBody) as err:
        FEED.parse(raw_env("kdniao", "RequestData=%7B%7D&RequestType=13812345678"))
    assert "13812345678" not in err.value.message
    assert "138****5678" in err.value.message


def test_failed_waybill_without_traces_is_not_an_error() -> None:
    push = [waybill("ZT1", [], Success=False, Reason="三天无轨迹", State="0")]
    result = FEED.parse(kd_env(push))
    assert (result.updates, result.rejected, result.ignored) == ([], [], None)


def test_107_is_ignored() -> None:
    body = "RequestData=%7B%22Data%22%3A%5B%5D%7D&DataSign=x&RequestType=107"
    result = FEED.parse(raw_env("kdniao", body))
    assert result.ignored and "107" in result.ignored
    assert (result.updates, result.rejected) == ([], [])
    assert FEED.parse(raw_env("kdniao", "RequestData=garbage&RequestType=107")).ignored


# --- courier alerts (StateEx 401/402/403/412) -------------------------------------------------
@pytest.mark.parametrize(
    ("state_ex", "kind"),
    [
        ("401", CourierAlertKind.NO_FIRST_SCAN),
        ("402", CourierAlertKind.DELIVERY_OVERDUE),
        ("403", CourierAlertKind.TRANSIT_STALL),
        ("412", CourierAlertKind.LOCKER_UNCOLLECTED),
    ],
)
def test_state_ex_alerts(state_ex: str, kind: CourierAlertKind) -> None:
    push = [waybill("ZT1", [trace(T1, "快件已揽收", "1")], State="2", StateEx=state_ex)]
    update = only_update(FEED.parse(kd_env(push, push_time="2024-05-06 10:20:30")))
    [alert] = update.alerts
    assert (alert.kind, alert.courier_code, alert.waybill, alert.courier) == (
        kind,
        state_ex,
        "ZT1",
        "ZTO",
    )
    assert alert.reported_at == datetime(2024, 5, 6, 10, 20, 30, tzinfo=SHANGHAI)
    assert alert.received_at == RECEIVED_AT
    assert alert.source_feed == "kdniao"
    assert alert.message
    assert len(update.scans) == 1


def test_alert_without_traces_still_makes_an_update() -> None:
    push = [waybill("ZT1", [], Success=False, StateEx="401", Reason="联系13812345678")]
    update = only_update(FEED.parse(kd_env(push)))
    assert update.scans == []
    assert update.alerts[0].message == "联系138****5678"


@pytest.mark.parametrize("state_ex", ["202", "404", "", "3"])
def test_other_state_ex_are_not_alerts(state_ex: str) -> None:
    push = [waybill("ZT1", [trace(T1, "快件已揽收", "1")], StateEx=state_ex)]
    assert only_update(FEED.parse(kd_env(push))).alerts == []


def test_alert_with_bad_push_time_is_rejected() -> None:
    push = [waybill("ZT1", [trace(T1, "快件已揽收", "1")], StateEx="403")]
    result = FEED.parse(kd_env(push, push_time="2024-02-30 00:00:00"))
    assert [r.reason for r in result.rejected] == ["bad_time"]
    assert only_update(result).alerts == []


# --- acknowledgement --------------------------------------------------------------------------
def test_acknowledge_success_and_refusal() -> None:
    feed = KdniaoFeed(FeedConfig(ebusiness_id="1000001"))
    now = datetime(2024, 5, 6, 2, 20, 31, tzinfo=UTC)
    ok = feed.acknowledge(None, now)
    assert ok.status == 200 and ok.content_type == "application/json"
    assert orjson.loads(ok.body) == {
        "EBusinessID": "1000001",
        "UpdateTime": "2024-05-06 10:20:31",
        "Success": True,
        "Reason": "",
    }
    refused = feed.acknowledge(SignatureInvalid("bad_signature", "DataSign mismatch"), now)
    assert refused.status == 403
    body = orjson.loads(refused.body)
    assert body["Success"] is False and body["Reason"] == "DataSign mismatch"
