"""Crash and restart: accepted data is never lost, no episode is opened twice, and a deadline
that fell due while the worker was down fires after it comes back (state and deadline index
are restored from the table changelogs)."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta, timezone
from typing import Any

from waybill_watch.samples import kdniao_form

CST = timezone(timedelta(hours=8))
APP_KEY = "recovery-app-key"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
FMT = "%Y-%m-%d %H:%M:%S"


def _exception_push(waybills: list[str], now: datetime) -> bytes:
    items = [
        {
            "LogisticCode": w,
            "ShipperCode": "YTO",
            "State": "4",
            "StateEx": "404",
            "Traces": [
                {
                    "AcceptTime": (now - timedelta(hours=30)).strftime(FMT),
                    "AcceptStation": "【广州白云】快件已揽收",
                    "Action": "1",
                },
                {
                    "AcceptTime": (now - timedelta(hours=2)).strftime(FMT),
                    "AcceptStation": "【南京鼓楼】收件人拒收",
                    "Action": "404",
                },
            ],
        }
        for w in waybills
    ]
    return kdniao_form(items, now, APP_KEY)


def _transit_push(waybill: str, scanned: datetime, now: datetime) -> bytes:
    item = {
        "LogisticCode": waybill,
        "ShipperCode": "STO",
        "State": "2",
        "StateEx": "2",
        "Traces": [
            {
                "AcceptTime": scanned.strftime(FMT),
                "AcceptStation": "【成都转运中心】快件已到达",
                "Action": "2",
            },
        ],
    }
    return kdniao_form([item], now, APP_KEY)


def _ids(records: list[dict[str, Any]], kind: str) -> list[str]:
    return [r["anomaly_id"] for r in records if r["type"] == kind and r["status"] == "open"]


async def test_sigkill_mid_stream_loses_nothing_and_opens_nothing_twice(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY)
    await worker.wait_ready()
    now = datetime.now(CST).replace(microsecond=0)
    waybills = [f"YT77{i:011d}" for i in range(40)]
    for start in range(0, len(waybills), 4):  # ten pushes of four waybills, all acknowledged
        status, _ = await worker.post(
            "kdniao", _exception_push(waybills[start : start + 4], now), FORM
        )
        assert status == 200
    worker.stop(signal.SIGKILL)  # no graceful commit: whatever was in flight is redone

    worker.start()
    await worker.wait_ready()
    # Kdniao re-sends after the crash too; it must not open anything new.
    status, _ = await worker.post("kdniao", _exception_push(waybills[:4], now), FORM)
    assert status == 200
    records = await worker.read_topic(
        "anomalies",
        until=lambda rs: len(set(_ids(rs, "delivery_exception"))) >= len(waybills),
        timeout=120,
    )
    opened = _ids(records, "delivery_exception")
    assert {r["subject"] for r in records if r["type"] == "delivery_exception"} == set(waybills)
    assert len(set(opened)) == len(waybills), "exactly one episode per waybill"


async def test_deadline_due_while_down_fires_after_restart(worker_factory) -> None:  # type: ignore[no-untyped-def]
    # A 27-second stall threshold makes the deadline fall due while the worker is stopped.
    worker = worker_factory(
        WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY, WAYBILL_WATCH_DETECTION__TRANSIT_STALL_HOURS="0.0075"
    )
    await worker.wait_ready()
    now = datetime.now(CST).replace(microsecond=0)
    status, _ = await worker.post("kdniao", _transit_push("ST5500000000001", now, now), FORM)
    assert status == 200
    events = await worker.read_topic("tracking.events", until=lambda rs: len(rs) >= 1)
    assert [e["status"] for e in events] == ["in_transit"]
    await asyncio.sleep(3)  # let the worker commit its table changelog
    assert worker.stop() == 0
    before = await worker.read_topic("anomalies", until=lambda rs: False, timeout=2)
    assert _ids(before, "transit_stall") == []

    await asyncio.sleep(30)  # the deadline passes while nobody runs
    worker.start()
    await worker.wait_ready()
    records = await worker.read_topic(
        "anomalies", until=lambda rs: len(_ids(rs, "transit_stall")) >= 1, timeout=60
    )
    [stall] = [r for r in records if r["type"] == "transit_stall"]
    assert stall["subject"] == "ST5500000000001"
    assert stall["reasons"] == ["transit"]
