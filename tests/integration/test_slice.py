"""The foundation slice on a real broker: Kdniao HTTP push → tracking.raw → tracking.events →
per-waybill table → delivery_exception → ``anomalies``, with metrics scraped afterwards."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from waybill_watch.samples import kdniao_form

CST = timezone(timedelta(hours=8))
APP_KEY = "it-app-key-not-real"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}


def _push(waybill: str, now: datetime) -> bytes:
    fmt = "%Y-%m-%d %H:%M:%S"
    item = {
        "LogisticCode": waybill,
        "ShipperCode": "ZTO",
        "State": "4",
        "StateEx": "405",
        "Location": "杭州市",
        "Traces": [
            {
                "AcceptTime": (now - timedelta(hours=20)).strftime(fmt),
                "AcceptStation": "【上海青浦】快件已揽收",
                "Location": "上海市",
                "Action": "1",
            },
            {
                "AcceptTime": (now - timedelta(hours=2)).strftime(fmt),
                "AcceptStation": "【杭州西湖】快件正在派送中",
                "Location": "杭州市",
                "Action": "202",
            },
            {
                "AcceptTime": (now - timedelta(hours=1)).strftime(fmt),
                "AcceptStation": "【杭州西湖】派件异常，收件人电话13812345678无人接听",
                "Location": "杭州市",
                "Action": "405",
            },
        ],
    }
    return kdniao_form([item], now, APP_KEY)


def _of_type(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind]


async def test_kdniao_push_opens_one_delivery_exception(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
    await worker.wait_ready()
    now = datetime.now(CST).replace(microsecond=0)
    body = _push("ZT9000000000001", now)

    status, answer = await worker.post("kdniao", body, FORM)
    assert status == 200
    ack = orjson.loads(answer)
    assert ack["Success"] is True and set(ack) >= {"EBusinessID", "UpdateTime", "Success"}

    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: len(_of_type(rs, "delivery_exception")) >= 1
    )
    [opened] = _of_type(anomalies, "delivery_exception")
    assert opened["status"] == "open"
    assert opened["subject"] == "ZT9000000000001" and opened["waybill"] == "ZT9000000000001"
    assert opened["scope"] == "waybill" and opened["severity"] == "high"
    assert opened["reasons"] == ["failed_attempt"]
    assert "13812345678" not in orjson.dumps(opened).decode()

    # Kdniao re-sends the whole trace: the same push again must not open a second episode.
    status, _ = await worker.post("kdniao", body, FORM)
    assert status == 200
    events = await worker.read_topic("tracking.events", until=lambda rs: len(rs) >= 3, timeout=30)
    assert sorted(e["status"] for e in events) == [
        "failed_attempt",
        "out_for_delivery",
        "picked_up",
    ]
    assert await worker.metric("waybill_watch_callbacks_received_total", feed="kdniao") == 2
    again = await worker.read_topic("anomalies", until=lambda rs: False, timeout=5)
    assert [a["anomaly_id"] for a in _of_type(again, "delivery_exception")] == [
        opened["anomaly_id"]
    ]
    events = await worker.read_topic("tracking.events", until=lambda rs: False, timeout=3)
    assert len(events) == 3, "re-pushed scans must not be forwarded twice"

    assert await worker.metric("waybill_watch_callbacks_accepted_total", feed="kdniao") == 2
    assert await worker.metric("waybill_watch_tracking_events_processed_total", outcome="new") == 3
    assert (
        await worker.metric("waybill_watch_tracking_events_processed_total", outcome="duplicate")
        == 3
    )
    assert (
        await worker.metric(
            "waybill_watch_anomalies_emitted_total", type="delivery_exception", status="open"
        )
        == 1
    )


async def test_anomaly_id_is_stable_across_independent_runs(worker_factory) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(CST).replace(microsecond=0)
    ids = []
    for _ in range(2):
        worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
        await worker.wait_ready()
        status, _ = await worker.post("kdniao", _push("ZT9000000000002", now), FORM)
        assert status == 200
        records = await worker.read_topic(
            "anomalies", until=lambda rs: len(_of_type(rs, "delivery_exception")) >= 1
        )
        ids.append(_of_type(records, "delivery_exception")[0]["anomaly_id"])
        worker.stop()
    assert ids[0] == ids[1]
    assert re.fullmatch(r"[0-9a-f]{32}", ids[0])


async def test_bad_signature_is_refused_and_counted(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
    await worker.wait_ready()
    body = _push("ZT9000000000003", datetime.now(CST)).replace(b"DataSign=", b"DataSign=x")
    status, answer = await worker.post("kdniao", body, FORM)
    assert status in (401, 403)
    assert orjson.loads(answer)["Success"] is False
    assert await worker.metric("waybill_watch_callbacks_rejected_total", feed="kdniao") == 1
