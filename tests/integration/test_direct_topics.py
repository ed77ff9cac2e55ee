"""Records produced straight to the worker's input topics (no HTTP): valid ones are processed,
invalid ones land on ``tracking.dlq`` with a reason code and the original bytes, and the worker
keeps serving."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from waybill_watch.feeds import encode
from waybill_watch.jsonio import dumps

from .conftest import recent_daytime

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
DLQ = "waybill_watch_dlq_records_total"
NORMALIZED = "waybill_watch_envelopes_normalized_total"
PROCESSED = "waybill_watch_tracking_events_processed_total"
ORDERS = "waybill_watch_order_events_processed_total"


@pytest.fixture(scope="module")
async def worker(module_worker_factory: Callable[..., Any]) -> Any:
    running = module_worker_factory()
    await running.wait_ready()
    return running


def new_waybill(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


def base_time() -> datetime:
    return recent_daytime()


def kd_trace(at: datetime, text: str, action: str) -> dict[str, str]:
    return {"AcceptTime": encode.local_time_text(at), "AcceptStation": text, "Action": action}


def canonical(waybill: str, at: datetime, status: str, text: str, **extra: Any) -> bytes:
    """One canonical tracking event as a merchant would produce it (deterministic event_id)."""
    event = {
        "waybill": waybill,
        "courier": "YTO",
        "event_time": at,
        "received_at": at + H / 4,
        "status": status,
        "location": {"city": "南京", "site": "南京鼓楼"},
        "description": text,
        "source_feed": "merchant-wms",
        **extra,
    }
    return dumps(encode.canonical_event(event))


def order(kind: str, waybill: str, at: datetime) -> bytes:
    return dumps(
        {
            "type": kind,
            "waybill": waybill,
            "courier": "YTO",
            "merchant": "shop-7",
            "order_id": f"O-{waybill}",
            "occurred_at": at.isoformat(timespec="milliseconds"),
        }
    )


def loads_or_none(value: bytes | None) -> Any:
    try:
        return orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None


async def read_json(
    worker: Any, name: str, until: Callable[[list[Any]], bool], timeout: float = 60
) -> list[Any]:
    """Decoded records of a topic that may also hold bytes that are not JSON (ours)."""
    records = await worker.read_records(
        name, until=lambda rs: until([loads_or_none(r.value) for r in rs]), timeout=timeout
    )
    return [loads_or_none(r.value) for r in records]


def of_waybill(records: list[Any], waybill: str, kind: str | None = None) -> list[Any]:
    return [
        r
        for r in records
        if isinstance(r, dict)
        and r.get("waybill") == waybill
        and (kind is None or r.get("type") == kind)
    ]


async def dead_letters(worker: Any, payloads: list[str]) -> dict[str, dict[str, Any]]:
    """The DLQ records holding each of ``payloads`` (by payload text), waiting for all."""

    def found(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["payload"]: r for r in records if r["payload"] in payloads}

    records = await worker.read_topic(
        "tracking.dlq", until=lambda rs: len(found(rs)) == len(set(payloads))
    )
    return found(records)


async def test_valid_envelope_on_tracking_raw_gives_scans_and_the_anomaly(worker: Any) -> None:
    waybill = new_waybill("ZT")
    t0 = base_time()
    push = encode.kdniao_push(
        [
            {
                "ShipperCode": "ZTO",
                "LogisticCode": waybill,
                "State": "4",
                "Traces": [
                    kd_trace(t0, "【上海青浦】快件已揽收", "1"),
                    kd_trace(t0 + H, "【杭州西湖】快件正在派送中", "202"),
                    kd_trace(t0 + 2 * H, "【杭州西湖】客户拒收", "404"),
                ],
            }
        ],
        None,  # the normaliser does not verify signatures: ingest did
    )
    envelope = encode.envelope("kdniao", push, datetime.now(SHANGHAI))

    await worker.produce("tracking.raw", dumps(envelope))

    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "delivery_exception"))
    )
    [opened] = of_waybill(anomalies, waybill, "delivery_exception")
    assert opened["status"] == "open" and opened["reasons"] == ["rejected"]
    events = of_waybill(
        await read_json(worker, "tracking.events", lambda rs: len(of_waybill(rs, waybill)) >= 3),
        waybill,
    )
    assert sorted(e["status"] for e in events) == ["out_for_delivery", "picked_up", "rejected"]
    assert {e["source_feed"] for e in events} == {"kdniao"}


async def test_invalid_records_on_tracking_raw_go_to_the_dlq_with_their_bytes(
    worker: Any,
) -> None:
    source = worker.topic("tracking.raw")
    tag = uuid.uuid4().hex
    now = datetime.now(SHANGHAI)
    unknown_feed = dumps(
        {"feed": "dhl", "received_at": now.isoformat(), "body": f"x={tag}", "headers": {}}
    )
    unreadable_body = dumps(
        encode.envelope(
            "kdniao",
            (f"RequestData=%7Bnot+json+{tag}&RequestType=102".encode(), {}),
            now,
        )
    )
    not_json = f"{{not json {tag}".encode()
    not_utf8 = b"\xff\xfe" + tag.encode() + b"\x80"
    cases = [
        # (record bytes, payload as stored, encoding, reason, feed)
        (not_json, not_json.decode(), "utf-8", "bad_envelope", None),
        (unknown_feed, unknown_feed.decode(), "utf-8", "bad_envelope", None),
        (unreadable_body, unreadable_body.decode(), "utf-8", "bad_json", "kdniao"),
        (not_utf8, base64.b64encode(not_utf8).decode(), "base64", "bad_envelope", None),
    ]
    bad_envelopes = await worker.metric(DLQ, source=source, reason="bad_envelope")
    bad_json = await worker.metric(DLQ, source=source, reason="bad_json")
    invalid = await worker.metric(NORMALIZED, feed="_invalid", outcome="rejected")

    for record, *_ in cases:
        await worker.produce("tracking.raw", record)

    letters = await dead_letters(worker, [payload for _, payload, *_ in cases])
    for _, payload, encoding, reason, feed in cases:
        letter = letters[payload]
        assert letter["reason"] == reason
        assert letter["error"], letter
        assert letter["source_topic"] == source
        assert letter["payload_encoding"] == encoding
        assert letter["feed"] == feed
        datetime.fromisoformat(letter["rejected_at"])
    assert "JSON" in letters[unreadable_body.decode()]["error"]
    assert "feed" in letters[unknown_feed.decode()]["error"]
    assert await worker.wait_metric(
        DLQ, lambda v: v >= bad_envelopes + 3, source=source, reason="bad_envelope"
    ) == (bad_envelopes + 3)
    assert await worker.metric(DLQ, source=source, reason="bad_json") == bad_json + 1
    assert await worker.metric(NORMALIZED, feed="_invalid", outcome="rejected") == invalid + 3


async def test_canonical_events_on_tracking_events_open_and_resolve_an_exception(
    worker: Any,
) -> None:
    waybill = new_waybill("YT")
    t0 = base_time()
    records = [
        canonical(waybill, t0, "out_for_delivery", "【南京鼓楼】派送中"),
        canonical(waybill, t0 + H, "failed_attempt", "【南京鼓楼】收件人不在，改约明日"),
        canonical(waybill, t0 + 3 * H, "delivered", "【南京鼓楼】已签收", sign_type="recipient"),
    ]
    new_before = await worker.metric(PROCESSED, feed="tracking.events", outcome="new")

    for record in records[:2]:
        await worker.produce("tracking.events", record, key=waybill.encode())
    opened = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "delivery_exception"))
    )
    await worker.produce("tracking.events", records[2], key=waybill.encode())
    anomalies = await worker.read_topic(
        "anomalies",
        until=lambda rs: any(a["status"] == "resolved" for a in of_waybill(rs, waybill)),
    )

    [first] = of_waybill(opened, waybill, "delivery_exception")
    assert first["status"] == "open" and first["reasons"] == ["failed_attempt"]
    episode = [(a["anomaly_id"], a["status"]) for a in of_waybill(anomalies, waybill)]
    assert episode == [(first["anomaly_id"], "open"), (first["anomaly_id"], "resolved")]
    assert await worker.metric(PROCESSED, feed="tracking.events", outcome="new") == new_before + 3
    # Scans merchants produced are already on the topic: the worker does not write them again.
    events = await read_json(
        worker, "tracking.events", lambda rs: len(of_waybill(rs, waybill)) >= 3
    )
    assert len(of_waybill(events, waybill)) == 3


async def produce_and_expect_dead_letters(
    worker: Any, name: str, cases: list[tuple[bytes, bytes, str]], bad_reason: str
) -> None:
    """Produce each ``(value, key, reason)`` to ``name``; each lands on the DLQ with its reason,
    source topic, key and an error text, and the DLQ counters move by exactly that much."""
    source = worker.topic(name)
    bad = await worker.metric(DLQ, source=source, reason=bad_reason)
    keyed = await worker.metric(DLQ, source=source, reason="wrong_key")
    expected_bad = sum(1 for *_, reason in cases if reason == bad_reason)
    expected_keyed = sum(1 for *_, reason in cases if reason == "wrong_key")

    for value, key, _ in cases:
        await worker.produce(name, value, key=key)

    letters = await dead_letters(worker, [value.decode() for value, _, _ in cases])
    for value, key, reason in cases:
        letter = letters[value.decode()]
        assert (letter["reason"], letter["source_topic"], letter["key"]) == (
            reason,
            source,
            key.decode(),
        )
        assert letter["error"]
    assert await worker.wait_metric(
        DLQ, lambda v: v >= bad + expected_bad, source=source, reason=bad_reason
    ) == (bad + expected_bad)
    assert await worker.metric(DLQ, source=source, reason="wrong_key") == keyed + expected_keyed


async def test_invalid_or_wrongly_keyed_tracking_events_go_to_the_dlq(worker: Any) -> None:
    waybill = new_waybill("YT")
    not_json = f"not json {waybill}".encode()
    missing_fields = dumps({"waybill": waybill, "status": "delivered"})
    bad_status = canonical(waybill, base_time(), "teleported", "？")
    wrong_key = canonical(waybill, base_time(), "in_transit", "【南京转运中心】已到达")
    cases = [
        (not_json, waybill.encode(), "bad_tracking_event"),
        (missing_fields, waybill.encode(), "bad_tracking_event"),
        (bad_status, waybill.encode(), "bad_tracking_event"),
        (wrong_key, b"SOMEONE-ELSE", "wrong_key"),
    ]
    await produce_and_expect_dead_letters(worker, "tracking.events", cases, "bad_tracking_event")


async def test_order_events_open_signed_not_received_after_a_delivered_scan(
    worker: Any,
) -> None:
    waybill = new_waybill("YT")
    t0 = base_time()
    scans_before = await worker.metric(PROCESSED, feed="tracking.events")
    await worker.produce(
        "tracking.events",
        canonical(waybill, t0, "out_for_delivery", "【南京鼓楼】派送中"),
        key=waybill.encode(),
    )
    await worker.produce(
        "tracking.events",
        canonical(waybill, t0 + H, "delivered", "【南京鼓楼】已签收", sign_type="recipient"),
        key=waybill.encode(),
    )
    await worker.wait_metric(PROCESSED, lambda v: v >= scans_before + 2, feed="tracking.events")
    reports = await worker.metric(ORDERS, type="not_received_reported")

    await worker.produce("orders.events", order("shipped", waybill, t0 - H), key=waybill.encode())
    await worker.produce(
        "orders.events",
        order("not_received_reported", waybill, datetime.now(SHANGHAI)),
        key=waybill.encode(),
    )

    anomalies = await worker.read_topic(
        "anomalies", until=lambda rs: bool(of_waybill(rs, waybill, "signed_not_received"))
    )
    [opened] = of_waybill(anomalies, waybill, "signed_not_received")
    assert opened["status"] == "open" and opened["severity"] == "critical"
    assert opened["merchant"] == "shop-7"
    assert [a["step"] for a in opened["actions"]] == [
        "contact_recipient",
        "request_sign_proof",
        "escalate_platform",
        "escalate_regulator",
    ]
    assert await worker.metric(ORDERS, type="not_received_reported") == reports + 1


async def test_invalid_or_wrongly_keyed_order_events_go_to_the_dlq(worker: Any) -> None:
    waybill = new_waybill("YT")
    not_json = f"[not json {waybill}".encode()
    unknown_type = dumps({"type": "lost", "waybill": waybill, "occurred_at": "2024-05-06"})
    no_offset = dumps({"type": "shipped", "waybill": waybill, "occurred_at": "2024-05-06T10:00:00"})
    wrong_key = order("receipt_confirmed", waybill, datetime.now(SHANGHAI))
    cases = [
        (not_json, waybill.encode(), "bad_order_event"),
        (unknown_type, waybill.encode(), "bad_order_event"),
        (no_offset, waybill.encode(), "bad_order_event"),
        (wrong_key, b"SOMEONE-ELSE", "wrong_key"),
    ]
    await produce_and_expect_dead_letters(worker, "orders.events", cases, "bad_order_event")


async def test_worker_still_serves_after_bad_input(worker: Any) -> None:
    """Runs last in the module: every bad record above was consumed without harm."""
    status, body = await worker.get("/readyz")
    assert status == 200, body
    assert orjson.loads(body)["status"] == "ready"
    status, _ = await worker.get("/healthz")
    assert status == 200
    assert worker.proc.poll() is None
    assert "waybill_watch_dlq_records_total" in await worker.metrics()
