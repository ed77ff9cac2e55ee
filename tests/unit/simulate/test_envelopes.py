"""The capture is valid contract input: envelopes, Kdniao form pushes, merchant order events."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from waybill_watch.feeds.signing import hmac_sha256_base64, kdniao_data_sign
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent

from .helpers import APP_KEY, MERCHANT_SECRET, Run, envelopes, kdniao_push


def test_every_line_is_a_capture_envelope(small_run: Run) -> None:
    parsed = [CaptureEnvelope.model_validate_json(line) for line in small_run.lines]
    assert {e.feed for e in parsed} == {"kdniao", "merchant"}
    assert all(e.received_at.utcoffset() is not None for e in parsed)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in small_run.lines)


def test_received_at_never_decreases(small_run: Run) -> None:
    times = [CaptureEnvelope.model_validate_json(line).received_at for line in small_run.lines]
    assert times == sorted(times)
    assert small_run.lines[0].find(b'"received_at":"2026-11-0') > 0
    assert b"+08:00" in small_run.lines[0]


def test_kdniao_pushes_are_signed_form_posts(small_run: Run) -> None:
    request_types: set[str] = set()
    for envelope in envelopes(small_run):
        if envelope["feed"] != "kdniao":
            continue
        assert envelope["content_type"] == "application/x-www-form-urlencoded"
        fields, data = kdniao_push(envelope)
        assert fields["DataSign"] == kdniao_data_sign(fields["RequestData"], APP_KEY)
        assert int(data["Count"]) == len(data["Data"]) >= 1
        request_types.add(fields["RequestType"])
        for item in data["Data"]:
            assert item["Success"] is True
            if fields["RequestType"] == "101":
                assert "StateEx" not in item
                assert all("Action" not in trace for trace in item["Traces"])
            else:
                assert all(trace["Action"] and trace["Location"] for trace in item["Traces"])
    assert request_types == {"101", "102"}


def test_traces_are_cumulative_snapshots(small_run: Run) -> None:
    """Every push of a waybill re-sends a prefix of its one true trace."""
    pushed: dict[str, list[list[Any]]] = defaultdict(list)
    for envelope in envelopes(small_run):
        if envelope["feed"] == "kdniao":
            for item in kdniao_push(envelope)[1]["Data"]:
                pushed[item["LogisticCode"]].append(item["Traces"])
    growing = 0
    for snapshots in pushed.values():
        full = max(snapshots, key=len)
        assert all(snap == full[: len(snap)] for snap in snapshots)
        times = [trace["AcceptTime"] for trace in full]
        assert times == sorted(times)
        growing += len(snapshots) > 1 and len(snapshots[-1]) > len(snapshots[0])
    assert growing > len(pushed) // 2


def test_retries_and_batches_occur(small_run: Run) -> None:
    """Duplicates, older snapshots after newer ones and multi-waybill pushes are all there."""
    last_size: dict[str, int] = {}
    duplicates = older = batched = 0
    for envelope in envelopes(small_run):
        if envelope["feed"] != "kdniao":
            continue
        data = kdniao_push(envelope)[1]["Data"]
        batched += len(data) > 1
        for item in data:
            size, waybill = len(item["Traces"]), item["LogisticCode"]
            previous = last_size.get(waybill)
            duplicates += previous == size
            older += previous is not None and size < previous
            last_size[waybill] = max(size, previous or 0)
    assert duplicates and older and batched


def test_merchant_bodies_are_signed_order_events(small_run: Run) -> None:
    types: set[str] = set()
    for envelope in envelopes(small_run):
        if envelope["feed"] != "merchant":
            continue
        body = envelope["body"]
        assert envelope["headers"]["x-waybill-watch-signature"] == hmac_sha256_base64(
            MERCHANT_SECRET, body.encode("utf-8")
        )
        doc = orjson.loads(body)
        for event in doc if isinstance(doc, list) else [doc]:
            types.add(OrderEvent.model_validate(event).type)
    assert types == {"shipped", "receipt_confirmed", "not_received_reported"}
