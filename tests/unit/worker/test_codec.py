"""Internal topic codec round-trips updates and ticks without loss."""

from datetime import datetime, timedelta, timezone

import pytest

from waybill_watch.domain.types import (
    CourierAlert,
    CourierAlertKind,
    DraftError,
    PendingUpdate,
    Scan,
    SignType,
    Status,
    WaybillUpdate,
)
from waybill_watch.feeds.kdniao import KdniaoFeed
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.tracking import TrackingEvent, scan_to_wire
from waybill_watch.samples import kdniao_form
from waybill_watch.worker import codec

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 26, 10, 15, 0, 123000, tzinfo=CST)


def _scan() -> Scan:
    return Scan(
        waybill="ZT1",
        courier="ZTO",
        event_time=AT - timedelta(hours=1),
        received_at=AT,
        status=Status.DELIVERED,
        source_feed="kdniao",
        event_id="e1",
        sign_type=SignType.PROXY,
        signer="张*",
        city="杭州",
        site="杭州西湖",
        description="已签收，门卫代收",
        courier_code="304",
    )


def test_update_round_trip() -> None:
    alert = CourierAlert(
        waybill="ZT1",
        courier="ZTO",
        kind=CourierAlertKind.TRANSIT_STALL,
        reported_at=AT,
        received_at=AT,
        source_feed="kdniao",
        courier_code="403",
        message="超时未更新",
    )
    update = WaybillUpdate("ZT1", "ZTO", AT, "kdniao", [_scan()], [alert], merchant="shop-1")
    kind, src, decoded = codec.decode(codec.encode_update(update, "raw/0"))
    assert (kind, src) == (codec.UPDATE, "raw/0")
    assert decoded.scan_count == 1
    assert decoded.realise() == update


def _kdniao_pending() -> tuple[KdniaoFeed, PendingUpdate]:
    feed = KdniaoFeed()
    now = datetime(2026, 11, 26, 18, 0, tzinfo=CST)
    trace = [
        {
            "AcceptTime": "2026-11-26 09:00:00",
            "AcceptStation": "【杭州转运中心】已发出",
            "Action": "2",
        },
        {
            "AcceptTime": "2026-11-26 17:30:00",
            "AcceptStation": "【杭州西湖】已签收，签收人：门卫张三 13812345678",
            "Action": "3",
            "Location": "杭州市",
        },
        {"AcceptTime": "2026-11-26 08:00:00", "AcceptStation": "【杭州】已揽收", "Action": "1"},
    ]
    item = {"LogisticCode": "ZT2", "ShipperCode": "ZTO", "State": "3", "Traces": trace}
    envelope = CaptureEnvelope.model_validate(
        {"feed": "kdniao", "received_at": now.isoformat(), "body": kdniao_form([item], now, None)}
    )
    (pending,) = feed.parse_pending(envelope).updates
    return feed, pending


def test_pending_update_round_trip_builds_the_scans_parse_builds() -> None:
    """A draft feed's update crosses the topic unbuilt and realises to what ``parse`` gives."""
    feed, pending = _kdniao_pending()
    record = codec.encode_pending(pending, "raw/1", feed.draft_to_wire)
    kind, src, decoded = codec.decode(record, {"kdniao": feed.scan_from_draft})
    assert (kind, src) == (codec.UPDATE, "raw/1")
    assert decoded.scan_count == 3
    expected = pending.realise()
    assert [s.event_time for s in expected.scans] == sorted(s.event_time for s in expected.scans)
    assert decoded.realise() == expected
    assert expected.scans[-1].sign_type is SignType.PROXY


def test_pending_update_builds_only_unknown_scans() -> None:
    feed, pending = _kdniao_pending()
    record = codec.encode_pending(pending, "raw/1", feed.draft_to_wire)
    full = pending.realise()
    built: list[list[object]] = []

    def counting(wire: list[object], *context: object) -> Scan:
        built.append(wire)
        return feed.scan_from_draft(wire, *context)  # type: ignore[arg-type]

    _, _, decoded = codec.decode(record, {"kdniao": counting})
    known = {full.scans[0].event_id, full.scans[2].event_id}
    assert decoded.realise(known.__contains__).scans == [full.scans[1]]
    assert len(built) == 1


def test_a_draft_that_cannot_be_built_raises_draft_error() -> None:
    feed, pending = _kdniao_pending()
    record = codec.encode_pending(pending, "raw/1", feed.draft_to_wire)
    _, _, without_builder = codec.decode(record)  # a worker that lacks the feed
    with pytest.raises(DraftError, match="no draft builder"):
        without_builder.realise()


def test_tick_round_trip() -> None:
    marks = {"raw/3": (1_700_000_000_123, True), "events/0": (1_700_000_000_000, False)}
    kind, _, decoded = codec.decode(codec.encode_tick(marks))
    assert kind == codec.TICK
    assert decoded == {src: list(mark) for src, mark in marks.items()}


def test_scan_wire_form_is_a_valid_tracking_event() -> None:
    wire = scan_to_wire(_scan())
    event = TrackingEvent.model_validate(wire)
    assert event.to_scan() == _scan()
    assert wire["event_time"] == "2026-11-26T09:15:00.123+08:00"
