"""Replay's fast path (scans built only for traces the waybill lacks) changes nothing.

Each check runs the same input twice: once as the worker does it (``Feed.parse`` builds every
scan, the engine drops the known ones) and once through ``parse_pending`` + ``known_ids``, and
compares everything observable: anomaly bytes, statistics and every stored state.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.feeds.base import FeedConfig
from waybill_watch.feeds.kdniao import KdniaoFeed
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.replay import Replay, encode_anomaly
from waybill_watch.samples import demo_waybills, kdniao_form
from waybill_watch.settings import Settings
from waybill_watch.simulate.generator import Generator
from waybill_watch.simulate.model import ANOMALY_TYPES, GROUP_TYPES, SimOptions
from waybill_watch.timefmt import format_rfc3339, parse_rfc3339

START = parse_rfc3339("2026-11-02T00:00:00+08:00")


def _run(lines: list[bytes], *, fast: bool) -> tuple[bytes, dict[str, Any], list[bytes]]:
    replay = Replay(DetectionSettings(), build_feeds(Settings()))
    if not fast:
        replay._pending_parsers.clear()  # every feed through Feed.parse, as the worker does
    for line in lines:
        replay.process_line(line)
    stats = replay.finish()
    events = b"".join(encode_anomaly(e) for e in replay.anomalies)
    states = sorted(state.to_bytes() for state in replay.waybill_states())
    return events, stats.to_dict(), states


def _same(lines: list[bytes]) -> tuple[bytes, dict[str, Any]]:
    slow, fast = _run(lines, fast=False), _run(lines, fast=True)
    assert fast[1] == slow[1]
    assert fast[0] == slow[0]
    assert fast[2] == slow[2]
    return fast[0], fast[1]


def test_fast_path_matches_the_worker_path_on_simulated_traffic() -> None:
    counts = {kind: 3 for kind in ANOMALY_TYPES}
    counts.update(dict.fromkeys(GROUP_TYPES, 1))
    options = SimOptions(
        waybills=600,
        seed=11,
        start_ms=int(START.timestamp()) * 1000,
        counts=counts,
        duplicate_rate=0.2,
        late_rate=0.1,
        batch_rate=0.3,
    )
    lines = [envelope.line() for envelope in Generator(options, DetectionSettings()).envelopes()]
    events, stats = _same(lines)
    assert stats["new_scans"] < stats["scans"]  # re-pushed traces were there to skip
    assert events.count(b"\n") > 20


def _envelope(data: list[dict[str, Any]], minutes: int) -> bytes:
    received = START + timedelta(minutes=minutes)
    doc = {"EBusinessID": "1", "PushTime": "", "Count": str(len(data)), "Data": data}
    body = f"RequestData={quote_plus(orjson.dumps(doc).decode())}&RequestType=102"
    envelope = {
        "feed": "kdniao",
        "received_at": format_rfc3339(received),
        "content_type": "application/x-www-form-urlencoded",
        "headers": {},
        "body": body,
    }
    return orjson.dumps(envelope) + b"\n"


def _trace(time: str, text: str, action: str = "", location: str = "") -> dict[str, str]:
    return {"AcceptTime": time, "AcceptStation": text, "Action": action, "Location": location}


def _item(waybill: str, courier: str, traces: list[dict[str, str]], state: str = "2") -> Any:
    return {"LogisticCode": waybill, "ShipperCode": courier, "State": state, "Traces": traces}


def test_fast_path_matches_on_awkward_pushes() -> None:
    first = _trace("2026-11-02 08:00:00", "【杭州转运中心】已揽收", "1", "杭州市")
    moved = _trace("2026-11-02 20:00:00", "【上海分拨中心】已发出", "2", "上海市")
    # The same trace again with another Location and Action: the first occurrence wins.
    moved_again = _trace("2026-11-02 20:00:00", "【上海分拨中心】已发出", "3", "苏州市")
    signed = _trace("2026-11-03 10:00:00", "已签收，签收人：本人", "", "上海市")
    late = _trace("2026-11-02 12:00:00", "【杭州转运中心】派件异常", "", "")
    lines = [
        _envelope([_item("SF100", "SF", [first])], 0),
        # Two items for one waybill and courier, and one for another courier.
        _envelope(
            [
                _item("SF100", "SF", [first, moved]),
                _item("SF100", "SF", [moved_again, first]),
                _item("SF100", "YTO", [first, moved]),
            ],
            60 * 21,
        ),
        # The latest trace duplicates an earlier one of the same push (State check target).
        _envelope([_item("SF100", "SF", [first, signed, moved, signed], state="3")], 60 * 27),
        # An older scan arriving late, beside every known one; a broken trace is rejected.
        _envelope(
            [_item("SF100", "SF", [first, late, moved, signed, {"AcceptTime": "x"}], "3")],
            60 * 28,
        ),
        _envelope([_item("SF100", "SF", [first, moved, signed], "3")], 60 * 200),
    ]
    _, stats = _same(lines)
    assert stats["rejected"] == {"bad_time": 1}
    assert stats["new_scans"] == 6  # first and moved (SF and YTO), signed, late


def test_parse_is_parse_pending_with_every_scan_built() -> None:
    now = START
    body = kdniao_form(demo_waybills(now, "T0000001"), now, None).decode()
    envelope = CaptureEnvelope(feed="kdniao", received_at=now, body=body)
    feed = KdniaoFeed(FeedConfig(allow_unsigned=True))
    parsed = feed.parse(envelope)
    pending = feed.parse_pending(envelope)
    assert [p.scan_count for p in pending.updates] == [len(u.scans) for u in parsed.updates]
    assert [p.realise() for p in pending.updates] == parsed.updates
    assert parsed.updates and all(u.scans for u in parsed.updates)


def test_realise_builds_only_unknown_scans_in_event_time_order() -> None:
    now = START
    body = kdniao_form(demo_waybills(now, "T0000002")[:1], now, None).decode()
    envelope = CaptureEnvelope(feed="kdniao", received_at=now, body=body)
    feed = KdniaoFeed(FeedConfig(allow_unsigned=True))
    full = feed.parse(envelope).updates[0].scans
    assert len(full) >= 3
    skipped = {full[0].event_id, full[-1].event_id}
    part = feed.parse_pending(envelope).updates[0]
    assert part.realise(skipped.__contains__).scans == full[1:-1]
    assert part.scan_count == len(full)
