"""Internal topic codec round-trips updates and ticks without loss."""

from datetime import datetime, timedelta, timezone

from waybill_watch.domain.types import (
    CourierAlert,
    CourierAlertKind,
    Scan,
    SignType,
    Status,
    WaybillUpdate,
)
from waybill_watch.models.tracking import TrackingEvent, scan_to_wire
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
    assert decoded == update


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
