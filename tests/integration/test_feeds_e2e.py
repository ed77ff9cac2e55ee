"""Every feed end to end over HTTP on a real broker, through one shared worker process.

A signed push with a delivery problem → provider-format acknowledgement → each scan once on
``tracking.events`` → the anomaly on ``anomalies``. Refusals (signature, size, unknown feed,
malformed body, no secret configured) answer in the provider's format and are counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
import pytest

from waybill_watch.feeds import encode
from waybill_watch.feeds.encode import Encoded
from waybill_watch.feeds.signing import (
    OWN_SIGNATURE_HEADER,
    hmac_sha256_base64,
    kdniao_data_sign,
    kuaidi100_sign,
    track17_sign,
)
from waybill_watch.timefmt import format_rfc3339

from .conftest import recent_daytime

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_BODY = 4096
SECRETS = {
    "kdniao": "it-kdniao-app-key",
    "kuaidi100": "it-kuaidi100-salt",
    "17track": "it-17track-key",
    "aftership": "it-aftership-secret",
    "canonical": "it-canonical-secret",
    "merchant": "it-merchant-secret",
}
SECRET_ENV = {
    "kdniao": "WAYBILL_WATCH_KDNIAO_APP_KEY",
    "kuaidi100": "WAYBILL_WATCH_KUAIDI100_SALT",
    "17track": "WAYBILL_WATCH_17TRACK_KEY",
    "aftership": "WAYBILL_WATCH_AFTERSHIP_SECRET",
    "canonical": "WAYBILL_WATCH_CANONICAL_SECRET",
    "merchant": "WAYBILL_WATCH_MERCHANT_SECRET",
}
ALL_SECRETS = {SECRET_ENV[feed]: secret for feed, secret in SECRETS.items()}
PHONE = "13812345678"
H = timedelta(hours=1)

RECEIVED = "waybill_watch_callbacks_received_total"
ACCEPTED = "waybill_watch_callbacks_accepted_total"
REJECTED = "waybill_watch_callbacks_rejected_total"
PROCESSED = "waybill_watch_tracking_events_processed_total"


@pytest.fixture(scope="module")
async def worker(module_worker_factory: Callable[..., Any]) -> Any:
    """One worker with every feed secret and a small body limit, shared by the module."""
    running = module_worker_factory(**ALL_SECRETS, WAYBILL_WATCH_MAX_BODY_BYTES=str(MAX_BODY))
    await running.wait_ready()
    return running


def new_waybill(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


def base_time() -> datetime:
    return recent_daytime()


def kd_trace(at: datetime, text: str, action: str, city: str) -> dict[str, str]:
    return {
        "AcceptTime": encode.local_time_text(at),
        "AcceptStation": text,
        "Action": action,
        "Location": city,
    }


# --- one push with a delivery problem per feed ---------------------------------------------


def kdniao_problem(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    item = {
        "ShipperCode": "ZTO",
        "LogisticCode": waybill,
        "State": "4",
        "Location": "杭州市",
        "Traces": [
            kd_trace(t0, "【上海青浦】快件已揽收", "1", "上海市"),
            kd_trace(t0 + H, "【杭州西湖】快件正在派送中", "202", "杭州市"),
            kd_trace(
                t0 + 2 * H, f"【杭州西湖】派件异常，收件人电话{PHONE}无人接听", "405", "杭州市"
            ),
        ],
    }
    return encode.kdniao_push([item], secret)


def kuaidi100_problem(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    def row(at: datetime, text: str, code: str) -> dict[str, str]:
        when = encode.local_time_text(at)
        return {"context": text, "time": when, "ftime": when, "statusCode": code}

    last_result = {
        "com": "zhongtong",
        "nu": waybill,
        "state": "2",
        "data": [  # newest first, as Kuaidi100 sends it
            row(t0 + 2 * H, f"【杭州西湖】派件异常，联系不上收件人{PHONE}", "204"),
            row(t0 + H, "【杭州西湖】快件派送中", "5"),
            row(t0, "【上海青浦】已揽收", "1"),
        ],
    }
    return encode.kuaidi100_push(last_result, secret)


def track17_problem(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    def event(at: datetime, text: str, sub_status: str) -> dict[str, str]:
        return {
            "time_iso": format_rfc3339(at),
            "description": text,
            "location": "Hangzhou",
            "sub_status": sub_status,
        }

    failure = event(t0 + 2 * H, "Delivery attempted, nobody home", "DeliveryFailure_NoBody")
    data = {
        "number": waybill,
        "carrier": 3011,
        "track_info": {
            "latest_status": {"status": "DeliveryFailure"},
            "latest_event": dict(failure),  # the same event again: one scan, not two
            "tracking": {
                "providers": [
                    {
                        "provider": {"key": 3011, "name": "China Post"},
                        "events": [
                            failure,
                            event(t0 + H, "Out for delivery", "OutForDelivery_Other"),
                            event(t0, "Picked up", "InTransit_PickedUp"),
                        ],
                    }
                ]
            },
        },
    }
    return encode.track17_push(data, secret)


def aftership_problem(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    def checkpoint(at: datetime, text: str, subtag: str) -> dict[str, str]:
        return {
            "checkpoint_time": at.strftime("%Y-%m-%dT%H:%M:%S"),  # naive: the feed zone
            "message": text,
            "location": "Hangzhou",
            "tag": subtag.partition("_")[0],
            "subtag": subtag,
        }

    msg = {
        "tracking_number": waybill,
        "slug": "zto-express",
        "tag": "AttemptFail",
        "subtag": "AttemptFail_001",
        "checkpoints": [
            checkpoint(t0, "Shipment picked up", "InTransit_002"),
            checkpoint(t0 + H, "Out for delivery", "OutForDelivery_001"),
            checkpoint(t0 + 2 * H, "Recipient not available", "AttemptFail_001"),
        ],
    }
    return encode.aftership_push(msg, secret, ts=int(t0.timestamp()) + 3 * 3600)


def canonical_problem(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    def event(at: datetime, status: str, text: str) -> dict[str, Any]:
        return {
            "waybill": waybill,
            "courier": "SF",
            "event_time": at,
            "received_at": at + H,
            "status": status,
            "location": {"city": "杭州", "site": "杭州西湖"},
            "description": text,
            "source_feed": "canonical",
        }

    return encode.canonical_push(
        [
            event(t0, "picked_up", "已揽收"),
            event(t0 + H, "out_for_delivery", "派送中"),
            event(t0 + 2 * H, "exception", "快件破损，暂停派送"),
        ],
        secret,
    )


@dataclass(frozen=True)
class Case:
    """One feed's problem push and what it must produce."""

    feed: str
    build: Callable[[str, datetime, str | None], Encoded]
    courier: str
    statuses: tuple[str, ...]
    reason: str


CASES = [
    Case(
        "kdniao",
        kdniao_problem,
        "ZTO",
        ("picked_up", "out_for_delivery", "failed_attempt"),
        "failed_attempt",
    ),
    Case(
        "kuaidi100",
        kuaidi100_problem,
        "ZTO",
        ("picked_up", "out_for_delivery", "failed_attempt"),
        "failed_attempt",
    ),
    Case(
        "17track",
        track17_problem,
        "YZPY",
        ("picked_up", "out_for_delivery", "failed_attempt"),
        "failed_attempt",
    ),
    Case(
        "aftership",
        aftership_problem,
        "ZTO",
        ("picked_up", "out_for_delivery", "failed_attempt"),
        "failed_attempt",
    ),
    Case(
        "canonical",
        canonical_problem,
        "SF",
        ("picked_up", "out_for_delivery", "exception"),
        "exception",
    ),
]


def order(kind: str, waybill: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "waybill": waybill,
        "courier": "ZTO",
        "merchant": "shop-42",
        "order_id": f"O-{waybill}",
        "occurred_at": format_rfc3339(at),
        **extra,
    }


def merchant_body(waybill: str, t0: datetime, secret: str | None) -> Encoded:
    return encode.merchant_push(order("shipped", waybill, t0 - H), secret)


BUILDERS: dict[str, Callable[[str, datetime, str | None], Encoded]] = {
    **{case.feed: case.build for case in CASES},
    "merchant": merchant_body,
}


# --- acknowledgement formats -----------------------------------------------------------------


def assert_ack(feed: str, status: int, answer: bytes, *, ok: bool, reason: str = "") -> None:
    """The body is the provider's own acknowledgement format for this outcome."""
    ack = orjson.loads(answer)
    if feed == "kdniao":
        assert set(ack) == {"EBusinessID", "UpdateTime", "Success", "Reason"}, ack
        assert ack["Success"] is ok
        datetime.strptime(ack["UpdateTime"], "%Y-%m-%d %H:%M:%S")  # Kdniao's naive time text
        assert (ack["Reason"] == "") is ok
    elif feed == "kuaidi100":
        if ok:
            assert ack == {"result": True, "returnCode": "200", "message": "成功"}
        else:
            assert ack["result"] is False and ack["returnCode"] == str(status), ack
            assert ack["message"]
    elif ok:
        assert ack == {"ok": True}
    else:
        assert ack["ok"] is False and ack["error"], ack
        if reason:
            assert ack["reason"] == reason


def of_waybill(records: list[dict[str, Any]], waybill: str, kind: str | None = None) -> list[Any]:
    return [
        r for r in records if r.get("waybill") == waybill and (kind is None or r["type"] == kind)
    ]


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.feed for c in CASES])
async def test_signed_problem_push_gives_scans_once_and_the_anomaly(
    worker: Any, case: Case
) -> None:
    waybill = new_waybill("IT")
    body, headers = case.build(waybill, base_time(), SECRETS[case.feed])

    status, answer = await worker.post(case.feed, body, headers)

    assert status == 200, answer
    assert_ack(case.feed, status, answer, ok=True)
    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "delivery_exception"))
    )
    [opened] = of_waybill(anomalies, waybill, "delivery_exception")
    assert opened["status"] == "open" and opened["severity"] == "high"
    assert opened["scope"] == "waybill" and opened["subject"] == waybill
    assert opened["courier"] == case.courier
    assert opened["reasons"] == [case.reason]
    assert PHONE not in orjson.dumps(opened).decode()
    # The scans were forwarded before the anomaly was emitted.
    events = of_waybill(
        await worker.read_topic(
            "tracking.events",
            until=lambda rs: len(of_waybill(rs, waybill)) >= len(case.statuses),
            timeout=30,
        ),
        waybill,
    )
    assert sorted(e["status"] for e in events) == sorted(case.statuses)
    assert len({e["event_id"] for e in events}) == len(events), "a scan was forwarded twice"
    assert {e["courier"] for e in events} == {case.courier}
    assert all(datetime.fromisoformat(e["event_time"]).utcoffset() is not None for e in events)


async def test_scans_forwarded_to_tracking_events_carry_no_phone_number(worker: Any) -> None:
    waybill = new_waybill("PH")
    status, _ = await worker.post(
        "kdniao", *kdniao_problem(waybill, base_time(), SECRETS["kdniao"])
    )
    assert status == 200
    records = await worker.read_topic(
        "tracking.events", until=lambda rs: len(of_waybill(rs, waybill)) >= 3, timeout=60
    )
    events = of_waybill(records, waybill)
    assert len(events) == 3
    assert PHONE not in orjson.dumps(events).decode()


async def test_not_received_after_a_delivered_scan_opens_signed_not_received(
    worker: Any,
) -> None:
    waybill = new_waybill("ZT")
    t0 = base_time()
    delivered = {
        "ShipperCode": "ZTO",
        "LogisticCode": waybill,
        "State": "3",
        "Traces": [
            kd_trace(t0, "【上海青浦】快件已揽收", "1", "上海市"),
            kd_trace(t0 + H, "【杭州西湖】快件正在派送中", "202", "杭州市"),
            kd_trace(t0 + 2 * H, "【杭州西湖】快件已签收，签收人：本人", "301", "杭州市"),
        ],
    }
    status, _ = await worker.post("kdniao", *encode.kdniao_push([delivered], SECRETS["kdniao"]))
    assert status == 200
    await worker.read_topic(
        "tracking.events",
        until=lambda rs: any(e["status"] == "delivered" for e in of_waybill(rs, waybill)),
        timeout=60,
    )

    now = datetime.now(SHANGHAI).replace(microsecond=0)
    destination = {"province": "浙江省", "city": "杭州市", "district": "西湖区"}
    orders = [
        order("shipped", waybill, t0 - H, destination=destination),
        order("not_received_reported", waybill, now),
    ]
    status, answer = await worker.post(
        "merchant", *encode.merchant_push(orders, SECRETS["merchant"])
    )

    assert status == 200
    assert_ack("merchant", status, answer, ok=True)
    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "signed_not_received"))
    )
    [opened] = of_waybill(anomalies, waybill, "signed_not_received")
    assert opened["status"] == "open" and opened["severity"] == "critical"
    assert opened["scope"] == "waybill" and opened["subject"] == waybill
    assert opened["reasons"] == ["not_received_reported"]
    assert opened["merchant"] == "shop-42" and opened["courier"] == "ZTO"
    detected = datetime.fromisoformat(opened["detected_at"])
    ladder = [
        (a["step"], datetime.fromisoformat(a["due_at"]) - detected) for a in opened["actions"]
    ]
    assert ladder == [
        ("contact_recipient", timedelta(hours=2)),
        ("request_sign_proof", timedelta(hours=24)),
        ("escalate_platform", timedelta(hours=48)),
        ("escalate_regulator", timedelta(days=7)),
    ]
    # A proper handover scan, a normal hour and the right city: nothing suspicious.
    assert not of_waybill(anomalies, waybill, "suspicious_signature")


SIGNATURE_FAULTS = [
    pytest.param("not-the-secret", 403, "bad_signature", id="wrong"),
    pytest.param(None, 401, "missing_signature", id="missing"),
]


@pytest.mark.parametrize(("signed_with", "http_status", "reason"), SIGNATURE_FAULTS)
@pytest.mark.parametrize("feed", list(BUILDERS))
async def test_bad_signature_is_refused_in_the_provider_format_and_counted(
    worker: Any, feed: str, signed_with: str | None, http_status: int, reason: str
) -> None:
    body, headers = BUILDERS[feed](new_waybill("SG"), base_time(), signed_with)
    rejected = await worker.metric(REJECTED, feed=feed, reason=reason)
    accepted = await worker.metric(ACCEPTED, feed=feed)

    status, answer = await worker.post(feed, body, headers)

    assert status == http_status, answer
    assert_ack(feed, status, answer, ok=False, reason=reason)
    assert await worker.metric(REJECTED, feed=feed, reason=reason) == rejected + 1
    assert await worker.metric(ACCEPTED, feed=feed) == accepted


@pytest.mark.parametrize("feed", ["kdniao", "canonical"])
async def test_body_over_the_limit_is_refused_with_413(worker: Any, feed: str) -> None:
    waybill = new_waybill("BG")
    t0 = base_time()
    if feed == "kdniao":
        traces = [
            kd_trace(t0 + i * H / 10, "【杭州转运中心】快件已到达", "2", "杭州市")
            for i in range(40)
        ]
        encoded = encode.kdniao_push(
            [{"ShipperCode": "ZTO", "LogisticCode": waybill, "Traces": traces}], SECRETS[feed]
        )
    else:
        events = [
            {
                "waybill": waybill,
                "courier": "SF",
                "event_time": t0 + i * H / 10,
                "received_at": t0 + H,
                "status": "in_transit",
                "description": "到达转运中心",
                "source_feed": "canonical",
            }
            for i in range(40)
        ]
        encoded = encode.canonical_push(events, SECRETS[feed])
    body, headers = encoded
    assert len(body) > MAX_BODY
    rejected = await worker.metric(REJECTED, feed=feed, reason="body_too_large")

    status, answer = await worker.post(feed, body, headers)

    assert status == 413
    assert_ack(feed, status, answer, ok=False)
    assert await worker.metric(REJECTED, feed=feed, reason="body_too_large") == rejected + 1


async def test_huge_body_is_answered_413_not_cut_off(worker: Any) -> None:
    """Ingest stops reading after the limit; the courier still gets its 413 answer."""
    body = b"RequestData=" + b"a" * 2_000_000

    status, answer = await worker.post("kdniao", body, {"content-type": encode.FORM_TYPE})

    assert status == 413
    assert_ack("kdniao", status, answer, ok=False)


async def test_unknown_feed_is_404_and_counted(worker: Any) -> None:
    received = await worker.metric(RECEIVED, feed="_unknown")
    rejected = await worker.metric(REJECTED, feed="_unknown", reason="unknown_feed")

    status, answer = await worker.post(
        "dhl", b'{"event":"x"}', {"content-type": "application/json"}
    )

    assert status == 404
    text = answer.decode()
    assert "unknown feed" in text and "kdniao" in text
    assert await worker.metric(RECEIVED, feed="_unknown") == received + 1
    assert await worker.metric(REJECTED, feed="_unknown", reason="unknown_feed") == rejected + 1


def _signed_form(fields: list[tuple[str, str]]) -> Encoded:
    return urlencode(fields).encode(), {"content-type": encode.FORM_TYPE}


def _signed_json(feed: str, body: bytes) -> Encoded:
    if feed == "17track":
        return body, {"content-type": encode.JSON_TYPE, "sign": track17_sign(body, SECRETS[feed])}
    header = "aftership-hmac-sha256" if feed == "aftership" else OWN_SIGNATURE_HEADER
    return body, {"content-type": encode.JSON_TYPE, header: hmac_sha256_base64(SECRETS[feed], body)}


MALFORMED: dict[str, tuple[Encoded, str, str]] = {
    # feed: (correctly signed body that cannot be read, reason code, a word the reason names)
    "kdniao": (
        _signed_form(
            [
                ("RequestData", "{not json"),
                ("DataSign", kdniao_data_sign("{not json", SECRETS["kdniao"])),
                ("RequestType", "102"),
            ]
        ),
        "bad_json",
        "JSON",
    ),
    "kuaidi100": (
        _signed_form([("param", "[1, 2"), ("sign", kuaidi100_sign("[1, 2", SECRETS["kuaidi100"]))]),
        "bad_json",
        "JSON",
    ),
    "17track": (_signed_json("17track", b"{not json"), "bad_json", "JSON"),
    "aftership": (_signed_json("aftership", b"[]"), "bad_shape", "object"),
    "canonical": (_signed_json("canonical", b'{"waybill": "X1"}'), "bad_shape", "array"),
    "merchant": (_signed_json("merchant", b"42"), "bad_shape", "order event"),
}


@pytest.mark.parametrize("feed", list(MALFORMED))
async def test_malformed_body_is_400_with_a_clear_reason(worker: Any, feed: str) -> None:
    (body, headers), reason, word = MALFORMED[feed]
    rejected = await worker.metric(REJECTED, feed=feed, reason=reason)
    accepted = await worker.metric(ACCEPTED, feed=feed)

    status, answer = await worker.post(feed, body, headers)

    assert status == 400, answer
    assert_ack(feed, status, answer, ok=False, reason=reason)
    ack = orjson.loads(answer)
    message = ack.get("Reason") or ack.get("message") or ack.get("error")
    assert word in message, message
    assert await worker.metric(REJECTED, feed=feed, reason=reason) == rejected + 1
    assert await worker.metric(ACCEPTED, feed=feed) == accepted


async def test_duplicate_reordered_multi_waybill_kdniao_pushes_give_each_scan_once(
    worker: Any,
) -> None:
    first, second = new_waybill("DA"), new_waybill("DB")
    t0 = base_time()
    a1 = kd_trace(t0, "【上海青浦】快件已揽收", "1", "上海市")
    a2 = kd_trace(t0 + H, "【上海转运中心】快件已发出", "2", "上海市")
    a3 = kd_trace(t0 + 3 * H, "【杭州转运中心】快件已到达", "2", "杭州市")
    b1 = kd_trace(t0 + H / 2, "【广州白云】快件已揽收", "1", "广州市")
    b2 = kd_trace(t0 + 2 * H, "【广州转运中心】快件已发出", "2", "广州市")

    def item(waybill: str, traces: list[dict[str, str]]) -> dict[str, Any]:
        return {"ShipperCode": "ZTO", "LogisticCode": waybill, "State": "2", "Traces": traces}

    pushes = [
        [item(first, [a1, a2])],
        [item(first, [a1, a2, a3]), item(second, [b1, b2])],  # two waybills in one push
        [item(first, [a1, a2])],  # an older push arriving late
        [item(second, [b2, b1]), item(first, [a3, a1, a2])],  # traces out of order
        [item(first, [a1, a2, a3]), item(second, [b1, b2])],  # the same push again
    ]
    sent = sum(len(w["Traces"]) for push in pushes for w in push)
    new_before = await worker.metric(PROCESSED, feed="kdniao", outcome="new")
    all_before = await worker.metric(PROCESSED, feed="kdniao")

    for push in pushes:
        status, answer = await worker.post("kdniao", *encode.kdniao_push(push, SECRETS["kdniao"]))
        assert status == 200, answer

    processed = await worker.wait_metric(PROCESSED, lambda v: v >= all_before + sent, feed="kdniao")
    assert processed == all_before + sent
    assert await worker.metric(PROCESSED, feed="kdniao", outcome="new") == new_before + 5
    events = await worker.read_topic(
        "tracking.events",
        until=lambda rs: len(of_waybill(rs, first)) + len(of_waybill(rs, second)) >= 5,
        timeout=30,
    )
    mine = of_waybill(events, first) + of_waybill(events, second)
    assert len(mine) == 5 and len({e["event_id"] for e in mine}) == 5
    assert sorted(e["status"] for e in of_waybill(events, first)) == [
        "in_transit",
        "in_transit",
        "picked_up",
    ]
    assert sorted(e["status"] for e in of_waybill(events, second)) == ["in_transit", "picked_up"]


async def test_feed_without_a_secret_refuses_input_unless_unsigned_is_allowed(
    worker: Any, ingest_factory: Callable[..., Any]
) -> None:
    """Ingest processes beside the worker. Only Kdniao has its key: every other feed answers
    403 ``unsigned_not_allowed``, signed or not. With ``ALLOW_UNSIGNED``: accepted."""
    only_kdniao = {"WAYBILL_WATCH_KDNIAO_APP_KEY": SECRETS["kdniao"]}
    ingest = ingest_factory(worker.prefix, **only_kdniao)
    await ingest.wait_ready(timeout=60)
    t0 = base_time()

    for feed in ("kuaidi100", "17track", "aftership", "canonical", "merchant"):
        for secret in (None, SECRETS[feed]):
            body, headers = BUILDERS[feed](new_waybill("US"), t0, secret)
            status, answer = await ingest.post(feed, body, headers)
            assert status == 403, (feed, answer)
            assert_ack(feed, status, answer, ok=False, reason="unsigned_not_allowed")
    assert await ingest.metric(REJECTED, reason="unsigned_not_allowed") == 10
    assert await ingest.metric(ACCEPTED) == 0
    status, _ = await ingest.post(
        "kdniao", *kdniao_problem(new_waybill("US"), t0, SECRETS["kdniao"])
    )
    assert status == 200

    # WAYBILL_WATCH_ALLOW_UNSIGNED=true and no secrets at all: unsigned input is taken as is.
    lenient = ingest_factory(worker.prefix, WAYBILL_WATCH_ALLOW_UNSIGNED="true")
    await lenient.wait_ready(timeout=60)
    waybill = new_waybill("UA")
    status, answer = await lenient.post("canonical", *canonical_problem(waybill, t0, None))
    assert status == 200, answer
    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "delivery_exception"))
    )
    assert of_waybill(anomalies, waybill, "delivery_exception")[0]["reasons"] == ["exception"]
