"""The worker's operational metrics on a real broker: consumer lag per topic and partition,
push → anomaly latency, stage times, clock lag, open episodes, stored waybill states, state size,
rebalances and every callback answer by code; the counted gauges survive a restart."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from waybill_watch.ops import metric_sum
from waybill_watch.samples import kdniao_form

from .conftest import RunningWorker

CST = timezone(timedelta(hours=8))
APP_KEY = "metrics-app-key"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
FMT = "%Y-%m-%d %H:%M:%S"
PARTITIONS = 4
CONSUMED = ("tracking.raw", "tracking.events", "orders.events")
INTERNAL = ("waybill-watch.updates", "waybill-watch.signals")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` (exact name) in an exposition: (labels, value)."""
    out = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            out.append((dict(LABEL.findall(match.group(2) or "")), float(match.group(3))))
    return out


def _trace(at: datetime, station: str, action: str) -> dict[str, str]:
    return {"AcceptTime": at.strftime(FMT), "AcceptStation": station, "Action": action}


def _exception_push(waybills: list[str], now: datetime) -> bytes:
    """A failed delivery attempt per waybill: opens one ``delivery_exception`` each."""
    items = [
        {
            "LogisticCode": w,
            "ShipperCode": "ZTO",
            "State": "4",
            "StateEx": "405",
            "Traces": [
                _trace(now - timedelta(hours=20), "【上海青浦】快件已揽收", "1"),
                _trace(now - timedelta(hours=2), "【杭州西湖】快件正在派送中", "202"),
                _trace(now - timedelta(hours=1), "【杭州西湖】派件异常，无人接听", "405"),
            ],
        }
        for w in waybills
    ]
    return kdniao_form(items, now, APP_KEY)


def _returned_push(waybill: str, now: datetime) -> bytes:
    """The parcel went back to the sender: resolves its ``delivery_exception``."""
    item = {
        "LogisticCode": waybill,
        "ShipperCode": "ZTO",
        "State": "4",
        "StateEx": "406",
        "Traces": [_trace(now - timedelta(minutes=30), "【上海青浦】快件已退回寄件人", "406")],
    }
    return kdniao_form([item], now, APP_KEY)


def _open_by_type(records: list[dict[str, Any]]) -> Counter[str]:
    """Opened minus resolved episodes per anomaly type, from the anomalies topic."""
    counts: Counter[str] = Counter()
    for r in records:
        if r["status"] == "open":
            counts[r["type"]] += 1
        elif r["status"] == "resolved":
            counts[r["type"]] -= 1
    return counts


async def _wait_for(worker: RunningWorker, check: Any, timeout: float = 60.0) -> str:
    """Scrape until ``check(text)`` holds; the last scrape (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    text = await worker.metrics()
    while not check(text) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        text = await worker.metrics()
    return text


def _episodes(text: str) -> dict[str, float]:
    return {labels["type"]: value for labels, value in samples(text, "waybill_watch_open_episodes")}


async def test_worker_metrics_answer_the_operators_questions(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
    await worker.wait_ready()
    now = datetime.now(CST).replace(microsecond=0)
    waybills = ["ZT7100000000001", "ZT7100000000002", "ZT7100000000003"]
    accepted = 0
    for body in (_exception_push(waybills[:2], now), _exception_push(waybills[2:], now)):
        status, _ = await worker.post("kdniao", body, FORM)
        assert status == 200
        accepted += 1
    first = await worker.read_topic(
        "anomalies", until=lambda rs: sum(_open_by_type(rs).values()) >= 3, committed=True
    )
    status, _ = await worker.post("kdniao", _returned_push(waybills[0], now), FORM)
    assert status == 200
    accepted += 1
    bad = _exception_push(["ZT7100000000009"], now).replace(b"DataSign=", b"DataSign=x")
    status, _ = await worker.post("kdniao", bad, FORM)
    assert status in (401, 403)
    refused = status
    status, _ = await worker.post("no-such-feed", b"{}", {"Content-Type": "application/json"})
    assert status == 404

    records = await worker.read_topic(
        "anomalies",
        until=lambda rs: any(r["status"] == "resolved" for r in rs),
        committed=True,
    )
    assert len(records) > len(first)
    expected = +_open_by_type(records)
    assert expected["delivery_exception"] == 2, records
    opened = sum(1 for r in records if r["status"] == "open")

    # Open episodes and stored states follow the stream (counted in each partition's state).
    text = await _wait_for(
        worker,
        lambda t: (
            {k: v for k, v in _episodes(t).items() if v} == expected
            and metric_sum(t, "waybill_watch_waybill_states") == len(waybills)
        ),
    )
    assert {k: v for k, v in _episodes(text).items() if v} == expected
    assert set(_episodes(text)) >= {"delivery_exception", "bulk_signing", "feed_silence"}
    assert metric_sum(text, "waybill_watch_waybill_states") == len(waybills)
    assert metric_sum(text, "waybill_watch_state_bytes") > 0

    # Push → anomaly: one observation per episode a push opened (no deadline fired here).
    assert metric_sum(text, "waybill_watch_deadlines_fired_total") == 0
    assert metric_sum(text, "waybill_watch_push_to_anomaly_seconds_count") == opened
    assert (
        metric_sum(text, "waybill_watch_push_to_anomaly_seconds_count", type="delivery_exception")
        == 3
    )
    # a push is processed within seconds of its receipt: the whole latency is under 30 s
    assert (
        metric_sum(
            text,
            "waybill_watch_push_to_anomaly_seconds_bucket",
            type="delivery_exception",
            le="30.0",
        )
        == 3
    )

    # Every stage timed each record it processed (the site/courier stage reads the waybill
    # partitions' clocks, sent every tick).
    stages = ("normalize", "waybill", "aggregate")
    text = await _wait_for(
        worker,
        lambda t: all(
            metric_sum(t, "waybill_watch_stage_seconds_count", stage=stage) > 0 for stage in stages
        ),
    )
    for stage in stages:
        assert metric_sum(text, "waybill_watch_stage_seconds_count", stage=stage) > 0, stage
    assert metric_sum(text, "waybill_watch_stage_seconds_count", stage="normalize") == accepted

    # One clock lag per owned waybill partition, small on the wall clock.
    lags = samples(text, "waybill_watch_clock_lag_seconds")
    assert sorted(labels["partition"] for labels, _ in lags) == [str(p) for p in range(PARTITIONS)]
    assert all(0 <= value < 30 for _, value in lags), lags

    assert metric_sum(text, "waybill_watch_rebalances_total", event="assigned") >= 1
    assert metric_sum(text, "waybill_watch_partitions_assigned") == PARTITIONS

    # Every answer of the callback endpoint, by feed and code.
    assert (
        metric_sum(text, "waybill_watch_callback_responses_total", feed="kdniao", code="200")
        == accepted
    )
    assert (
        metric_sum(text, "waybill_watch_callback_responses_total", feed="kdniao", code=str(refused))
        == 1
    )
    assert (
        metric_sum(text, "waybill_watch_callback_responses_total", feed="_unknown", code="404") == 1
    )

    # Consumer lag: a series per owned partition of each consumed topic, back to 0 once
    # everything was read (librdkafka's statistics come every few seconds).
    text = await _wait_for(
        worker,
        lambda t: (
            len(samples(t, "waybill_watch_consumer_lag")) == len(CONSUMED + INTERNAL) * PARTITIONS
            and metric_sum(t, "waybill_watch_consumer_lag") == 0
        ),
    )
    lag = samples(text, "waybill_watch_consumer_lag")
    series = {(labels["topic"], labels["partition"]) for labels, _ in lag}
    for name in (*CONSUMED, *INTERNAL):
        for partition in range(PARTITIONS):
            assert (worker.topic(name), str(partition)) in series, (name, partition, series)
    assert {labels["topic"] for labels, _ in lag} == {
        worker.topic(name) for name in (*CONSUMED, *INTERNAL)
    }
    assert metric_sum(text, "waybill_watch_consumer_lag") == 0, lag

    # A restart on the same data dir: the counts come back from the partitions' state.
    assert worker.stop() == 0
    worker.start()
    await worker.wait_ready()
    text = await _wait_for(
        worker,
        lambda t: (
            {k: v for k, v in _episodes(t).items() if v} == expected
            and metric_sum(t, "waybill_watch_waybill_states") == len(waybills)
        ),
    )
    assert {k: v for k, v in _episodes(text).items() if v} == expected
    assert metric_sum(text, "waybill_watch_waybill_states") == len(waybills)
    assert metric_sum(text, "waybill_watch_rebalances_total", event="assigned") >= 1
    assert metric_sum(text, "waybill_watch_push_to_anomaly_seconds_count") == 0
