"""The case service on a real broker and PostgreSQL: worker → ``anomalies`` → case → step
done → overdue step on ``cases.events`` → auto-close on ``receipt_confirmed``."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from waybill_watch.feeds import encode
from waybill_watch.timefmt import format_rfc3339, zone

from .cases_helpers import api, case_process
from .conftest import RunningWorker

SHANGHAI = zone("Asia/Shanghai")
WAYBILL = "SF7000000000042"
MERCHANT_SECRET = "it-merchant-secret-not-real"
CANONICAL_SECRET = "it-canonical-secret-not-real"


def scan(status: str, at: datetime, city: str, site: str, **extra: Any) -> dict[str, Any]:
    return {
        "waybill": WAYBILL,
        "courier": "SF",
        "event_time": at,
        "received_at": at,
        "status": status,
        "location": {"city": city, "site": site},
        "description": f"【{site}】{status}",
        "source_feed": "canonical",
        **extra,
    }


def order(kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "waybill": WAYBILL,
        "courier": "SF",
        "merchant": "shop-42",
        "order_id": "O-42",
        "occurred_at": format_rfc3339(at),
        **extra,
    }


def of(records: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


async def wait_for(probe, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError("condition not met in time")


async def test_worker_to_case_to_overdue_step_to_auto_close(
    worker_factory,
    database_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    worker: RunningWorker = worker_factory(
        WAYBILL_WATCH_MERCHANT_SECRET=MERCHANT_SECRET,
        WAYBILL_WATCH_CANONICAL_SECRET=CANONICAL_SECRET,
    )
    cases = case_process(worker.bootstrap, worker.prefix, database_url, tmp_path).start()
    await worker.wait_ready()
    await cases.wait_ready()

    now = datetime.now(SHANGHAI).replace(microsecond=0)
    # about a day ago, but signed in daytime: a signing in the odd-hours window (00:00-06:00
    # Shanghai) also opens suspicious_signature, so the route would not be clean when the
    # suite runs between 01:00 and 07:00 Shanghai time (17:00-23:00 UTC)
    day = now - timedelta(days=1)
    while (day - timedelta(hours=1)).hour < 7:
        day -= timedelta(hours=1)
    status, _ = await worker.post(
        "canonical",
        *encode.canonical_push(
            [
                scan("picked_up", day - timedelta(hours=20), "深圳", "深圳南山网点"),
                scan("out_for_delivery", day - timedelta(hours=3), "杭州", "杭州西湖营业部"),
                scan(
                    "delivered",
                    day - timedelta(hours=1),
                    "杭州",
                    "杭州西湖营业部",
                    sign_type="recipient",
                    signer="张*",
                ),
            ],
            CANONICAL_SECRET,
        ),
    )
    assert status == 200
    # the scans first (applied before the order, else a 45 h old `shipped` with no scan yet
    # would open no_first_scan at once)
    forwarded = await worker.read_topic("tracking.events", until=lambda rs: len(rs) >= 3)
    assert len(forwarded) == 3
    status, _ = await worker.post(
        "merchant",
        *encode.merchant_push(
            order("shipped", day - timedelta(hours=21), destination={"city": "杭州市"}),
            MERCHANT_SECRET,
        ),
    )
    assert status == 200
    status, _ = await worker.post(
        "merchant", *encode.merchant_push(order("not_received_reported", now), MERCHANT_SECRET)
    )
    assert status == 200

    # the anomaly becomes a case with the playbook's steps
    async def the_case() -> dict[str, Any] | None:
        code, body = await api(cases, "GET", "/api/cases?type=signed_not_received")
        assert code == 200
        items = body["items"]  # type: ignore[index]
        return items[0] if items else None

    summary = await wait_for(the_case)
    assert summary["waybill"] == WAYBILL and summary["merchant"] == "shop-42"
    assert summary["types"] == ["signed_not_received"]  # a clean route: nothing else opened
    case_id = summary["case_id"]
    code, case = await api(cases, "GET", f"/api/cases/{case_id}")
    assert code == 200
    assert [s["step"] for s in case["steps"]] == ["call_buyer", "ask_courier", "escalate_platform"]  # type: ignore[index]
    assert (case["origin_city"], case["destination_city"]) == ("深圳", "杭州市")  # type: ignore[index]

    # a person completes the first step through the API
    code, case = await api(
        cases,
        "POST",
        f"/api/cases/{case_id}/steps/call_buyer",
        {"state": "done", "outcome": "reached_buyer", "note": "not at the door"},
    )
    assert code == 200
    assert case["steps"][0]["state"] == "done"  # type: ignore[index]

    # the second step goes overdue: step_due then step_overdue on cases.events, once each
    events = await worker.read_topic(
        "cases.events",
        until=lambda rs: bool(of(rs, event="step_overdue", step="ask_courier")),
        committed=True,
        timeout=60,
    )
    assert [e["event"] for e in of(events, case_id=case_id)][:1] == ["opened"]
    assert len(of(events, event="step_due", step="ask_courier")) == 1
    assert len(of(events, event="step_overdue", step="ask_courier")) == 1
    assert of(events, event="step_done", step="call_buyer")[0]["by"].startswith("it-tester")
    assert not of(events, event="step_overdue", step="call_buyer")  # done before due

    # the buyer confirms receipt: the worker resolves the anomaly, the case closes by itself
    status, _ = await worker.post(
        "merchant",
        *encode.merchant_push(
            order("receipt_confirmed", now + timedelta(seconds=1)), MERCHANT_SECRET
        ),
    )
    assert status == 200
    events = await worker.read_topic(
        "cases.events",
        until=lambda rs: bool(of(rs, event="closed", case_id=case_id)),
        committed=True,
        timeout=60,
    )
    [closed] = of(events, event="closed", case_id=case_id)
    assert (closed["outcome"], closed["by"]) == ("receipt_confirmed", "system")
    code, case = await api(cases, "GET", f"/api/cases/{case_id}")
    assert case["status"] == "closed"  # type: ignore[index]
    assert {s["state"] for s in case["steps"][1:]} == {"cancelled"}  # type: ignore[index]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "no case event is published twice"

    # the dossier has the whole timeline with the signing scan
    code, dossier = await api(cases, "GET", f"/api/cases/{case_id}/dossier")
    assert code == 200, dossier
    text = str(dossier)
    assert "delivered" in text and "recipient" in text and "深圳南山网点" in text

    metrics = await cases.metrics()
    assert 'waybill_watch_cases_events_published_total{event="closed"} 1.0' in metrics
    assert cases.stop() == 0


async def test_a_malformed_anomaly_goes_to_the_dlq_and_the_partition_moves_on(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    from ..unit.cases.factory import event

    prefix = f"d{uuid.uuid4().hex[:10]}."
    cases = case_process(kafka_bootstrap, prefix, database_url, tmp_path).start()
    await cases.wait_ready()
    good = event(waybill="GOOD0001")
    for value in (b"{not json", b'{"anomaly_id": "x", "type": "teleported"}', None):
        await cases.produce("anomalies", value, key=b"GOOD0001")  # type: ignore[arg-type]
    await cases.produce("anomalies", good.model_dump_json().encode(), key=b"GOOD0001")

    dlq = await cases.read_topic("tracking.dlq", until=lambda rs: len(rs) >= 3, timeout=60)
    assert [d["reason"] for d in dlq] == ["invalid_json", "invalid_anomaly", "empty_record"]
    assert dlq[0]["payload"] == "{not json" and dlq[0]["source_topic"] == prefix + "anomalies"
    assert "type" in dlq[1]["error"]

    async def opened() -> bool:
        code, body = await api(cases, "GET", "/api/cases")
        return code == 200 and [c["waybill"] for c in body["items"]] == ["GOOD0001"]  # type: ignore[index]

    assert await wait_for(opened)
    metrics = await cases.metrics()
    assert 'waybill_watch_cases_dlq_records_total{reason="invalid_json"} 1.0' in metrics
    assert 'waybill_watch_cases_anomalies_total{outcome="rejected"} 3.0' in metrics
    assert cases.stop() == 0
