"""Encoding: form quoting, Kdniao pushes equal to the project's encoder, texts the parser reads."""

from __future__ import annotations

import random
from urllib.parse import quote_plus

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from waybill_watch.domain.types import SignType, Status
from waybill_watch.feeds import build_feed
from waybill_watch.feeds import encode as project_encode
from waybill_watch.feeds.base import FeedConfig
from waybill_watch.feeds.common import read_form
from waybill_watch.feeds.signing import kdniao_data_sign
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.simulate.encode import form_quote, kdniao_push
from waybill_watch.simulate.model import HOUR, ScanSpec, WaybillPlan, kdniao_time
from waybill_watch.simulate.texts import STEPS
from waybill_watch.timefmt import parse_rfc3339

T0 = int(parse_rfc3339("2026-11-03T09:00:00+08:00").timestamp()) * 1000

#: What the parser must read each step as (status, sign type of deliveries).
EXPECTED: dict[str, tuple[Status, SignType | None]] = {
    "pickup": (Status.PICKED_UP, None),
    "depart": (Status.IN_TRANSIT, None),
    "arrive_hub": (Status.IN_TRANSIT, None),
    "depart_hub": (Status.IN_TRANSIT, None),
    "arrive_outlet": (Status.IN_TRANSIT, None),
    "out_for_delivery": (Status.OUT_FOR_DELIVERY, None),
    "redeliver": (Status.OUT_FOR_DELIVERY, None),
    "signed_recipient": (Status.DELIVERED, SignType.RECIPIENT),
    "signed_proxy": (Status.DELIVERED, SignType.PROXY),
    "signed_after_exception": (Status.DELIVERED, SignType.RECIPIENT),
    "locker_in": (Status.AVAILABLE_FOR_PICKUP, None),
    "station_in": (Status.AVAILABLE_FOR_PICKUP, None),
    "locker_out": (Status.DELIVERED, SignType.LOCKER),
    "station_out": (Status.DELIVERED, SignType.STATION),
    "failed_attempt": (Status.FAILED_ATTEMPT, None),
    "exception": (Status.EXCEPTION, None),
    "rejected": (Status.REJECTED, None),
    "returning": (Status.RETURNING, None),
    "returned": (Status.RETURNED, None),
}
#: Steps of normal lives, which may be pushed as RequestType 101 (read from the text).
TEXT_READ_STEPS = (
    "pickup",
    "depart",
    "arrive_hub",
    "depart_hub",
    "arrive_outlet",
    "out_for_delivery",
    "signed_recipient",
    "signed_proxy",
)
SITE = "杭州西湖区文三路营业部"


@given(st.text())
def test_form_quote_is_quote_plus(text: str) -> None:
    try:
        expected = quote_plus(text)
    except UnicodeEncodeError:  # lone surrogates: neither side can encode them
        return
    assert form_quote(text) == expected


def plan_with(texts: list[tuple[str, str]], request_type: str = "102") -> WaybillPlan:
    plan = WaybillPlan("ZT0000000000001", "ZTO", "shop-01", "O-1", request_type)
    for i, (action, text) in enumerate(texts):
        plan.scans.append(ScanSpec(T0 + i * HOUR, action, text, "杭州市", SITE))
    return plan


@pytest.mark.parametrize("request_type", ["101", "102"])
@pytest.mark.parametrize("app_key", [None, "k+ey/with=odd chars"])
def test_push_equals_the_project_encoder(request_type: str, app_key: str | None) -> None:
    plan = plan_with(
        [("1", f"【{SITE}】已揽收 a+b"), ("202", f"【{SITE}】派件 100% & more")], request_type
    )
    body = kdniao_push(
        [(plan, 2, None), (plan, 1, "403")], T0 + 3 * HOUR, ebusiness_id="1000001", app_key=app_key
    )
    theirs_items = []
    for count, alert in ((2, None), (1, "403")):
        scans = plan.scans[:count]
        item = {
            "OrderCode": "O-1",
            "ShipperCode": "ZTO",
            "LogisticCode": plan.waybill,
            "State": {"1": "1", "202": "2"}[scans[-1].action],
            "StateEx": alert or scans[-1].action,
            "Location": "杭州市",
            "Traces": [
                {
                    "AcceptTime": kdniao_time(s.at),
                    "AcceptStation": s.text,
                    "Location": s.city,
                    "Action": s.action,
                    "Remark": "",
                }
                for s in scans
            ],
        }
        theirs_items.append(item)
    theirs, _ = project_encode.kdniao_push(
        theirs_items, app_key, int(request_type), push_time=kdniao_time(T0 + 3 * HOUR)
    )
    mine_form, their_form = read_form(body), read_form(theirs.decode())
    assert orjson.loads(mine_form["RequestData"].value) == orjson.loads(
        their_form["RequestData"].value
    )
    assert mine_form["RequestType"].value == request_type
    if app_key is None:
        assert "DataSign" not in mine_form
    else:
        sign = kdniao_data_sign(mine_form["RequestData"].value, app_key)
        assert mine_form["DataSign"].value == sign


def parse_one(action: str, text: str, request_type: str) -> tuple[Status, SignType | None, str]:
    plan = plan_with([(action, text)], request_type)
    body = kdniao_push([(plan, 1, None)], T0 + HOUR, ebusiness_id="1", app_key=None)
    envelope = CaptureEnvelope(
        feed="kdniao", received_at=parse_rfc3339("2026-11-03T10:00:00+08:00"), body=body
    )
    result = build_feed("kdniao", FeedConfig(allow_unsigned=True)).parse(envelope)
    (scan,) = result.updates[0].scans
    return scan.status, scan.sign_type, scan.site or ""


def render_all(step: str) -> list[tuple[str, str]]:
    actions, templates = STEPS[step]
    fields = {
        "site": SITE,
        "next": "杭州转运中心",
        "rider": "王师傅",
        "phone": "138****5678",
        "brand": "中通快递",
        "code": "12-3-4567",
        "street": "文三路",
    }
    return [(a, t.format(**fields)) for a in actions for t in templates]


@pytest.mark.parametrize("step", sorted(EXPECTED))
def test_the_kdniao_parser_reads_every_step_as_intended(step: str) -> None:
    for action, text in render_all(step):
        status, sign_type, site = parse_one(action, text, "102")
        assert (status, sign_type) == EXPECTED[step], text
        assert site == SITE


@pytest.mark.parametrize("step", TEXT_READ_STEPS)
def test_request_type_101_texts_read_like_102(step: str) -> None:
    for action, text in render_all(step):
        assert parse_one(action, text, "101")[:2] == EXPECTED[step], text


def test_masked_phone_numbers_only() -> None:
    from waybill_watch.simulate.texts import masked_phone

    rng = random.Random(1)
    assert all("****" in masked_phone(rng) for _ in range(50))
