"""Reading courier texts: city, site, signer and the order of the status rules."""

from __future__ import annotations

import pytest

from waybill_watch.domain.types import SignType, Status
from waybill_watch.feeds.text_rules import (
    SignRule,
    city_from_area,
    city_from_text,
    infer_status,
    normalise_city,
    read_text,
    sign_type_for,
    sign_type_from_text,
    signer_from_text,
    site_from_text,
)


@pytest.mark.parametrize(
    ("name", "city"),
    [
        ("杭州市", "杭州"),
        ("杭州", "杭州"),
        (" 杭州市 ", "杭州"),
        ("市", "市"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_city(name: str | None, city: str | None) -> None:
    assert normalise_city(name) == city


@pytest.mark.parametrize(
    ("text", "city"),
    [
        ("【杭州市】快件已揽收", "杭州"),
        ("快件到达【浙江省杭州市西湖区】", "杭州"),
        ("发往广州市", "广州"),
        ("到达达州市", "达州"),
        ("乌鲁木齐市转运中心已发出", "乌鲁木齐"),
        ("快件已到达【菜鸟快递超市】", None),
        ("快件到达【快递超市】", None),
        ("到达城市中心", None),
        ("已到达杭州", None),  # no 市: nothing guessed
    ],
)
def test_city_from_text(text: str, city: str | None) -> None:
    assert city_from_text(text) == city


@pytest.mark.parametrize(
    ("area", "city"),
    [
        ("浙江,杭州市", "杭州"),
        ("广东省,深圳市,南山区", "深圳"),
        ("北京市", "北京"),
        ("浙江", None),
        ("", None),
    ],
)
def test_city_from_area(area: str, city: str | None) -> None:
    assert city_from_area(area) == city


@pytest.mark.parametrize(
    ("text", "site"),
    [
        ("【杭州转运中心】已发出", "杭州转运中心"),
        ("已签收，签收人是【张三】", None),
        ("派件员【李四】，电话【13812345678】，站点【文一路站】", "文一路站"),
        ("【13812345678】", None),
        ("快件已揽收", None),
        ("【】空", None),
    ],
)
def test_site_skips_people_and_phones(text: str, site: str | None) -> None:
    assert site_from_text(text) == site


@pytest.mark.parametrize(
    ("text", "signer"),
    [
        ("已签收，签收人：张三丰", "张**"),
        ("已签收，签收人是【王五】", "王*"),
        ("已签收，签收人是【门卫】", "门卫"),
        ("已签收，签收人：13812345678", "138****5678"),
        ("已签收，签收人凭取件码签收", None),
        ("快件已揽收", None),
    ],
)
def test_signer_masked_unless_a_role(text: str, signer: str | None) -> None:
    assert signer_from_text(text) == signer


@pytest.mark.parametrize(
    ("text", "sign_type"),
    [
        ("已由【XX代收点】代收", SignType.STATION),  # 代收点 is a station, not a proxy
        ("非本人签收", SignType.PROXY),
        ("本人签收", SignType.RECIPIENT),
        ("丰巢柜", SignType.LOCKER),
        ("物业前台代签", SignType.PROXY),
        ("已签收", None),
    ],
)
def test_sign_type_words(text: str, sign_type: SignType | None) -> None:
    assert sign_type_from_text(text) is sign_type


@pytest.mark.parametrize(
    ("rule", "text", "sign_type"),
    [
        (SignRule.TEXT_ELSE_UNKNOWN, "已签收", SignType.UNKNOWN),
        (SignRule.TEXT_ELSE_RECIPIENT, "已签收", SignType.RECIPIENT),
        (SignRule.TEXT_ELSE_RECIPIENT, "门卫签收", SignType.PROXY),
        (SignRule.PROXY, "本人签收", SignType.PROXY),
        (SignRule.RECIPIENT, "门卫签收", SignType.RECIPIENT),
        (SignRule.STATION_ELSE_LOCKER, "已签收", SignType.LOCKER),
        (SignRule.STATION_ELSE_LOCKER, "驿站签收", SignType.STATION),
        (SignRule.LOCKER_ELSE_STATION, "已取件", SignType.STATION),
        (SignRule.LOCKER_ELSE_STATION, "丰巢取件", SignType.LOCKER),
    ],
)
def test_sign_rules(rule: SignRule, text: str, sign_type: SignType) -> None:
    assert sign_type_for(rule, read_text(text)) is sign_type


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("拒收，退回寄件人", Status.REJECTED),
        ("退货已签收", Status.RETURNED),
        ("派件异常后已签收", Status.DELIVERED),
        ("超时未签收", None),  # a timeout notice, not a scan: never "delivered"
        ("未妥投", Status.FAILED_ATTEMPT),
        ("已妥投", Status.DELIVERED),
        ("正在派送中，预计放入驿站", Status.OUT_FOR_DELIVERY),
        ("快件已到达【杭州派件网点】", Status.IN_TRANSIT),
        ("快件已被驿站代收", Status.AVAILABLE_FOR_PICKUP),
        ("待揽件", Status.INFO_RECEIVED),
        ("Arrived at facility", None),
    ],
)
def test_rule_order(text: str, status: Status | None) -> None:
    assert infer_status(text) is status
