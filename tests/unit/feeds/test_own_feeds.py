"""Our own feeds: canonical tracking events and merchant order events."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

import orjson
import pytest

from waybill_watch.domain.types import SignType, Status
from waybill_watch.feeds.base import (
    FeedConfig,
    MalformedBody,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)
from waybill_watch.feeds.canonical import CanonicalFeed
from waybill_watch.feeds.encode import canonical_push, merchant_push
from waybill_watch.feeds.kdniao import KdniaoFeed
from waybill_watch.feeds.merchant import MerchantFeed

from .helpers import RECEIVED_AT, env, ids, kd_env, only_update, raw_env, trace, waybill

CANONICAL = CanonicalFeed()
MERCHANT = MerchantFeed()
HEADER = "x-waybill-watch-signature"


def _event(waybill: str = "YT1", description: str = "快件已揽收", **extra: Any) -> dict[str, Any]:
    return {
        "waybill": waybill,
        "courier": "YTO",
        "event_time": "2024-05-06T09:15:00+08:00",
        "received_at": "2024-05-06T09:16:00+08:00",
        "status": "picked_up",
        "source_feed": "canonical",
        "description": description,
        "event_id": f"id-{waybill}-{description}",
        **extra,
    }


def _order(**extra: Any) -> dict[str, Any]:
    return {
        "type": "shipped",
        "waybill": "YT1",
        "courier": "YTO",
        "merchant": "shop-42",
        "order_id": "O-1",
        "occurred_at": "2024-05-06T09:00:00+08:00",
        **extra,
    }


@pytest.mark.parametrize(
    ("feed_class", "encode", "payload"),
    [(CanonicalFeed, canonical_push, [_event()]), (MerchantFeed, merchant_push, _order())],
)
def test_hmac_header(feed_class: type, encode: Any, payload: Any) -> None:
    body, headers = encode(payload, "s3cret")
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert headers[HEADER] == expected
    feed_class(FeedConfig(secret="s3cret")).verify(headers, body)
    feed_class(FeedConfig(secret="s3cret")).verify({"X-Waybill-Watch-Signature": expected}, body)
    with pytest.raises(SignatureInvalid):
        feed_class(FeedConfig(secret="other")).verify(headers, body)
    with pytest.raises(SignatureMissing):
        feed_class(FeedConfig(secret="s3cret")).verify({}, body)
    with pytest.raises(UnsignedNotAllowed):
        feed_class().verify(headers, body)
    feed_class(FeedConfig(allow_unsigned=True)).verify({}, body)


def test_canonical_groups_per_waybill_and_drops_duplicates() -> None:
    events = [_event(), _event(), _event("ZT2"), _event(description="到达", status="in_transit")]
    result = CANONICAL.parse(env("canonical", canonical_push(events, None)))
    assert [(u.waybill, len(u.scans)) for u in result.updates] == [("YT1", 2), ("ZT2", 1)]
    scan = result.updates[0].scans[0]
    assert scan.received_at == RECEIVED_AT  # the envelope's, not the producer's
    assert scan.status is Status.PICKED_UP
    assert result.updates[0].source_feed == "canonical"


def test_canonical_keeps_event_ids_and_masks_signers() -> None:
    body = orjson.dumps(
        [_event(event_id="given-id", status="delivered", sign_type="proxy", signer="张三丰")]
    ).decode()
    scan = only_update(CANONICAL.parse(raw_env("canonical", body))).scans[0]
    assert (scan.event_id, scan.sign_type, scan.signer) == ("given-id", SignType.PROXY, "张**")
    body = orjson.dumps([_event(status="delivered", sign_type="proxy", signer="门卫")]).decode()
    assert only_update(CANONICAL.parse(raw_env("canonical", body))).scans[0].signer == "门卫"


def test_kdniao_scans_round_trip_through_canonical() -> None:
    push = [waybill("ZT1", [trace("2024-05-05 18:01:00", "快件已揽收", "1", "上海市")])]
    scans = only_update(KdniaoFeed().parse(kd_env(push))).scans
    again = only_update(CANONICAL.parse(env("canonical", canonical_push(scans, None)))).scans
    assert ids(again) == ids(scans)
    assert [(s.status, s.city, s.courier_code) for s in again] == [(Status.PICKED_UP, "上海", "1")]


def test_canonical_encoder_fills_deterministic_event_ids() -> None:
    body1, _ = canonical_push([_event(event_id="")], None)
    body2, _ = canonical_push([_event(event_id="")], None)
    assert body1 == body2
    assert len(orjson.loads(body1)[0]["event_id"]) == 32


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_event(status="lost_in_space"), "invalid_event"),
        (_event(event_time="2024-05-06 09:15:00"), "bad_time"),
        (_event(event_time="2024-02-30T09:15:00+08:00"), "bad_time"),
        ({"waybill": "YT1"}, "invalid_event"),
        (_event(event_id=None), "invalid_event"),
        ("not an object", "invalid_event"),
    ],
)
def test_canonical_bad_items_rejected_alone(item: Any, reason: str) -> None:
    body = orjson.dumps([item, _event(event_id="ok")]).decode()
    result = CANONICAL.parse(raw_env("canonical", body))
    assert [r.reason for r in result.rejected] == [reason]
    assert ids(only_update(result).scans) == ["ok"]


def test_canonical_rejection_text_has_no_personal_data() -> None:
    body = orjson.dumps([_event(signer=13812345678, status="x", event_id="e")]).decode()
    [rejected] = CANONICAL.parse(raw_env("canonical", body)).rejected
    assert "13812345678" not in rejected.error
    assert rejected.waybill == "YT1"


@pytest.mark.parametrize(
    ("body", "reason"), [("{", "bad_json"), ("{}", "bad_shape"), ("3", "bad_shape")]
)
def test_canonical_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        CANONICAL.parse(raw_env("canonical", body))
    assert err.value.reason == reason


def test_merchant_single_and_array() -> None:
    one = MERCHANT.parse(env("merchant", merchant_push(_order(), None)))
    many = MERCHANT.parse(
        env("merchant", merchant_push([_order(), _order(type="receipt_confirmed")], None))
    )
    assert [o.type for o in one.orders] == ["shipped"]
    assert [o.type for o in many.orders] == ["shipped", "receipt_confirmed"]
    assert one.orders[0].occurred_at == datetime.fromisoformat("2024-05-06T09:00:00+08:00")
    assert one.updates == [] and many.rejected == []


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_order(type="lost"), "invalid_order"),
        (_order(occurred_at="yesterday"), "bad_time"),
        (_order(occurred_at="2024-05-06T09:00:00"), "bad_time"),
        (_order(waybill=""), "invalid_order"),
        ([1], "invalid_order"),
    ],
)
def test_merchant_bad_items_rejected_alone(item: Any, reason: str) -> None:
    body = orjson.dumps([item, _order()]).decode()
    result = MERCHANT.parse(raw_env("merchant", body))
    assert [r.reason for r in result.rejected] == [reason]
    assert len(result.orders) == 1


@pytest.mark.parametrize(
    ("body", "reason"), [("", "bad_json"), ('"x"', "bad_shape"), ("1", "bad_shape")]
)
def test_merchant_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        MERCHANT.parse(raw_env("merchant", body))
    assert err.value.reason == reason


def test_acknowledgements() -> None:
    ok = MERCHANT.acknowledge(None, RECEIVED_AT)
    assert (ok.status, orjson.loads(ok.body)) == (200, {"ok": True})
    refused = CANONICAL.acknowledge(
        MalformedBody("bad_json", "body is not valid JSON"), RECEIVED_AT
    )
    assert refused.status == 400
    assert orjson.loads(refused.body) == {
        "ok": False,
        "reason": "bad_json",
        "error": "body is not valid JSON",
    }
