"""Crash and restart: accepted data is never lost, no episode is opened twice, and a deadline
that fell due while the worker was down fires after it comes back (state and deadline index
are restored from the table changelogs)."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
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


async def test_exactly_once_restart_without_rocksdb_restores_all_state(worker_factory) -> None:  # type: ignore[no-untyped-def]
    """Under exactly-once, a restart whose RocksDB files are gone restores each waybill
    partition from its changelog: the pushes Kdniao re-sends are all duplicates (no scan is
    forwarded again, no episode opened twice). A tiny commit and tick interval make the worker
    tick, and commit that tick, between the assignment and the changelog restore: a state
    write then (the tick marker) moved the store's changelog offset past the records not
    restored yet, and recovery skipped them (the state of one partition was lost)."""
    worker = worker_factory(
        WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY,
        WAYBILL_WATCH_PROCESSING_GUARANTEE="exactly-once",
        WAYBILL_WATCH_COMMIT_INTERVAL_SECONDS="0.01",
        WAYBILL_WATCH_TICK_INTERVAL_SECONDS="0.05",
    )
    await worker.wait_ready()
    now = datetime.now(CST).replace(microsecond=0)
    waybills = [f"YT78{i:011d}" for i in range(40)]
    pushes = [_exception_push(waybills[i : i + 4], now) for i in range(0, len(waybills), 4)]
    for body in pushes:
        status, _ = await worker.post("kdniao", body, FORM)
        assert status == 200
    scans = 2 * len(waybills)  # each push has two traces per waybill
    first = await worker.read_topic(
        "tracking.events", until=lambda rs: len(rs) >= scans, timeout=120, committed=True
    )
    assert len(first) == scans
    assert worker.stop() == 0
    shutil.rmtree(Path(worker.env["WAYBILL_WATCH_DATA_DIR"]) / f"{worker.prefix}waybill-watch")

    worker.start()
    await worker.wait_ready()
    for body in pushes:
        status, _ = await worker.post("kdniao", body, FORM)
        assert status == 200
    await worker.wait_metric(
        "waybill_watch_tracking_events_processed_total",
        lambda n: n >= scans,  # new or duplicate: every scan of the re-sent pushes applied
        timeout=120,
    )
    await asyncio.sleep(2)  # a re-forwarded scan would be committed with its duplicate count
    events = await worker.read_topic(
        "tracking.events", until=lambda rs: False, timeout=5, committed=True
    )
    again = Counter(e["event_id"] for e in events) - Counter(e["event_id"] for e in first)
    assert not again, f"{again.total()} scans forwarded again after the restore"
    records = await worker.read_topic("anomalies", until=lambda rs: False, timeout=3)
    assert len(_ids(records, "delivery_exception")) == len(waybills), "one episode per waybill"
