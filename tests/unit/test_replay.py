"""The pure replay runner: stream clock, deadlines between envelopes, routing, stats, output."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.ids import scan_event_id
from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedConfig,
    FeedError,
    MalformedBody,
    ParseResult,
    Rejected,
)
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import TrackingEvent
from waybill_watch.replay import Replay, write_jsonl

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=SH)


def at(hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


class JsonFeed:
    """A stand-in feed: ``canonical`` bodies are arrays of tracking events, ``merchant`` of
    order events; the body ``"bad"`` is malformed and ``{"reject": ...}`` a rejected part."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.config = FeedConfig(allow_unsigned=True)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse(self, envelope: CaptureEnvelope) -> ParseResult:
        if envelope.body == "bad":
            raise MalformedBody("bad_body", "not JSON")
        items = orjson.loads(envelope.body)
        result = ParseResult()
        if self.name == "merchant":
            result.orders = [OrderEvent.model_validate(i) for i in items]
            return result
        by_waybill: dict[str, Any] = {}
        for item in items:
            if "reject" in item:
                result.rejected.append(Rejected(item["reject"], "rejected part"))
                continue
            s = TrackingEvent.model_validate(item).to_scan()
            by_waybill.setdefault(s.waybill, []).append(s)
        from waybill_watch.domain.types import WaybillUpdate

        result.updates = [
            WaybillUpdate(w, scans[0].courier, envelope.received_at, "canonical", scans)
            for w, scans in by_waybill.items()
        ]
        return result

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        return Acknowledgement(200, b"{}")


FEEDS = {"canonical": JsonFeed("canonical"), "merchant": JsonFeed("merchant")}


def event(
    waybill: str, status: str, when: datetime, courier: str = "YTO", **extra: Any
) -> dict[str, Any]:
    text = extra.pop("description", f"{status} {waybill}")
    return {
        "waybill": waybill,
        "courier": courier,
        "event_time": when.isoformat(),
        "received_at": when.isoformat(),
        "status": status,
        "description": text,
        "source_feed": "canonical",
        "event_id": scan_event_id(waybill, courier, when.isoformat(), status, text),
        **extra,
    }


def line(feed: str, received: datetime, body: Any) -> bytes:
    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    return orjson.dumps({"feed": feed, "received_at": received.isoformat(), "body": text})


def run(lines: list[bytes], **kw: Any) -> Replay:
    replay = Replay(DetectionSettings(), FEEDS, **kw)
    replay.run(lines)
    return replay


def test_deadline_fires_when_the_next_envelope_moves_the_clock_past_it() -> None:
    lines = [
        line("canonical", at(0), [event("W1", "in_transit", at(0), location={"site": "杭州"})]),
        line("canonical", at(50), [event("W2", "picked_up", at(50))]),
    ]
    replay = run(lines)
    assert [(e.type, e.status, e.waybill, e.detected_at) for e in replay.anomalies] == [
        ("transit_stall", "open", "W1", at(50))
    ]
    assert replay.stats.deadlines_fired == 1


def test_finish_until_fires_deadlines_up_to_until_and_skips_later_envelopes() -> None:
    lines = [
        line("canonical", at(0), [event("W1", "out_for_delivery", at(0))]),
        line("canonical", at(30), [event("W1", "delivered", at(30), sign_type="recipient")]),
    ]
    replay = run(lines, until=at(24))
    assert [(e.type, e.detected_at) for e in replay.anomalies] == [("transit_stall", at(24))]
    assert replay.stats.after_until == 1

    no_until = run(lines[:1])
    assert no_until.anomalies == []  # the clock stops at the last envelope (+0 h)


def test_malformed_envelopes_are_counted_by_reason_never_fatal() -> None:
    lines = [
        b"{not json",
        b'{"feed": "canonical"}',
        line("kuaidi100", at(0), "{}"),
        line("canonical", at(0), "bad"),
        line("canonical", at(0), [{"reject": "no_waybill"}, event("W1", "exception", at(0))]),
        b"   ",
    ]
    replay = run(lines)
    assert dict(replay.stats.malformed) == {
        "invalid_json": 1,
        "invalid_envelope": 1,
        "unknown_feed": 1,
        "bad_body": 1,
    }
    assert dict(replay.stats.rejected) == {"no_waybill": 1}
    assert replay.stats.envelopes == 5
    assert [e.type for e in replay.anomalies] == ["delivery_exception"]
    assert "malformed: bad_body=1 invalid_envelope=1" in replay.stats.summary()


def _busy_capture() -> list[bytes]:
    lines = [line("merchant", at(-1), [_shipped("W0")])]
    for i in range(25):  # 25 recipient signatures at one site in one window
        when = at(1, i * 0.3)
        lines.append(
            line(
                "canonical",
                when,
                [
                    event(
                        f"S{i:02d}",
                        "delivered",
                        when,
                        courier="ZTO",
                        sign_type="recipient",
                        location={"site": "三墩站"},
                        description=f"已签收 电话1381234{i:04d}",
                    )
                ],
            )
        )
    for i in range(70):  # a busy YTO feed that then goes quiet
        lines.append(line("canonical", at(2, i * 0.5), [event(f"F{i}", "in_transit", at(2))]))
    lines.append(line("canonical", at(5), [event("X1", "picked_up", at(5), courier="JD")]))
    return lines


def _shipped(waybill: str) -> dict[str, Any]:
    return {
        "type": "shipped",
        "waybill": waybill,
        "courier": "YTO",
        "merchant": "shop-1",
        "occurred_at": at(-1).isoformat(),
    }


def test_signals_reach_site_and_courier_engines_in_process() -> None:
    replay = run(_busy_capture())
    kinds = [(e.type, e.status) for e in replay.anomalies]
    assert kinds.count(("bulk_signing", "open")) == 1
    assert kinds.count(("bulk_signing", "updated")) == 5
    assert ("feed_silence", "open") in kinds
    assert ("no_first_scan", "open") not in kinds  # shipped at -1 h: due at +23 h
    silence = next(e for e in replay.anomalies if e.type == "feed_silence")
    assert silence.subject == "YTO"
    assert silence.detected_at == at(5)
    bulk = next(e for e in replay.anomalies if e.type == "bulk_signing")
    assert bulk.subject == "ZTO:三墩站"
    assert b"13812340" not in orjson.dumps(bulk.model_dump(mode="json"))

    replay.finish(at(23))
    assert [(e.type, e.waybill, e.detected_at) for e in replay.anomalies[-1:]] == [
        ("no_first_scan", "W0", at(23))
    ]


def test_output_is_byte_identical_across_runs_and_state_storage_modes() -> None:
    capture = _busy_capture()
    outputs = []
    for store_bytes in (False, True, False):
        buffer = io.BytesIO()
        write_jsonl(run(capture, store_bytes=store_bytes).anomalies, buffer)
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].count(b"\n") > 10


def test_clock_never_goes_back_for_an_out_of_order_envelope() -> None:
    lines = [
        line("canonical", at(0), [event("W1", "in_transit", at(0))]),
        line("canonical", at(49), [event("W2", "in_transit", at(49))]),
        line("canonical", at(10), [event("W3", "exception", at(10))]),
    ]
    replay = run(lines)
    assert [(e.type, e.waybill, e.detected_at) for e in replay.anomalies] == [
        ("transit_stall", "W1", at(49)),
        ("delivery_exception", "W3", at(49)),
    ]
    assert replay.clock.now() == at(49)


def test_kdniao_push_with_a_courier_alert_through_the_real_feed() -> None:
    from waybill_watch.feeds import build_feed
    from waybill_watch.feeds.encode import envelope, kdniao_push

    push = kdniao_push(
        [
            {
                "ShipperCode": "ZTO",
                "LogisticCode": "ZT0000000000001",
                "State": "2",
                "StateEx": "403",
                "Traces": [
                    {
                        "AcceptTime": "2026-11-20 09:00:00",
                        "AcceptStation": "快件已揽收",
                        "Action": "1",
                    }
                ],
            }
        ],
        None,
        push_time="2026-11-21 09:00:00",
    )
    capture = envelope("kdniao", push, at(24))
    replay = Replay(
        DetectionSettings(), {"kdniao": build_feed("kdniao", FeedConfig(allow_unsigned=True))}
    )
    replay.process_envelope(capture)
    replay.finish()
    assert [(e.type, e.status, e.reasons) for e in replay.anomalies] == [
        ("transit_stall", "open", ["courier_reported"])
    ]
    assert replay.stats.new_scans == 1
