"""17TRACK webhooks: sign header, status tables, events of every provider, alerts."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
import pytest

from waybill_watch.domain.types import CourierAlertKind, SignType, Status
from waybill_watch.feeds.base import (
    FeedConfig,
    MalformedBody,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)
from waybill_watch.feeds.encode import track17_push
from waybill_watch.feeds.track17 import Track17Feed
from waybill_watch.feeds.track17_codes import MAIN_STATUSES, STAGES, SUB_STATUSES

from .helpers import SHANGHAI, env, ids, only_update, raw_env
from .vectors import TRACK17_BODY, TRACK17_KEY, TRACK17_SIGN

FEED = Track17Feed()


def _event(
    time_iso: str = "2024-05-06T09:15:00+08:00",
    text: str = "Arrived at facility",
    sub_status: str | None = "InTransit_Other",
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"time_iso": time_iso, "description": text, "location": "Hangzhou"}
    if sub_status is not None:
        out["sub_status"] = sub_status
    return {**out, **extra}


def _data(providers: list[list[dict]], carrier: Any = 3011, **track_info: Any) -> dict:
    return {
        "number": "RR1CN",
        "carrier": carrier,
        "track_info": {
            "tracking": {
                "providers": [
                    {"provider": {"key": carrier, "name": "Example"}, "events": events}
                    for events in providers
                ]
            },
            **track_info,
        },
    }


def _parse(data: dict, event: str = "TRACKING_UPDATED"):
    return FEED.parse(env("17track", track17_push(data, None, event=event)))


class TestSign:
    keyed = Track17Feed(FeedConfig(secret=TRACK17_KEY))

    def test_reference_vector_independently(self) -> None:
        digest = hashlib.sha256(f"{TRACK17_BODY}/{TRACK17_KEY}".encode()).hexdigest()
        assert digest == TRACK17_SIGN

    def test_verify(self) -> None:
        self.keyed.verify({"sign": TRACK17_SIGN}, TRACK17_BODY.encode())
        self.keyed.verify({"Sign": TRACK17_SIGN.upper()}, TRACK17_BODY.encode())

    def test_wrong_missing_unsigned(self) -> None:
        body = TRACK17_BODY.encode()
        with pytest.raises(SignatureInvalid):
            self.keyed.verify({"sign": TRACK17_SIGN}, body + b" ")
        with pytest.raises(SignatureMissing):
            self.keyed.verify({}, body)
        with pytest.raises(UnsignedNotAllowed):
            Track17Feed().verify({"sign": TRACK17_SIGN}, body)

    def test_encoder_signs(self) -> None:
        body, headers = track17_push(_data([[_event()]]), "k")
        Track17Feed(FeedConfig(secret="k")).verify(headers, body)


def test_reference_body() -> None:
    update = only_update(FEED.parse(raw_env("17track", TRACK17_BODY)))
    assert (update.waybill, update.courier) == ("RR000000000CN", "YZPY")
    [scan] = update.scans  # the provider event and latest_event are the same scan
    assert (scan.status, scan.courier_code, scan.city) == (
        Status.RETURNING,
        "Exception_Returning",
        "Hangzhou",
    )
    assert scan.event_time == datetime(2024, 5, 6, 9, 15, tzinfo=SHANGHAI)


SUB_ROWS: list[tuple[str, Status | None]] = [
    ("NotFound_Other", None),
    ("NotFound_InvalidCode", None),
    ("InfoReceived", Status.INFO_RECEIVED),
    ("InTransit_PickedUp", Status.PICKED_UP),
    ("InTransit_Other", Status.IN_TRANSIT),
    ("InTransit_Departure", Status.IN_TRANSIT),
    ("InTransit_Arrival", Status.IN_TRANSIT),
    ("InTransit_CustomsProcessing", Status.CUSTOMS),
    ("InTransit_CustomsReleased", Status.CUSTOMS),
    ("InTransit_CustomsRequiringInformation", Status.CUSTOMS),
    ("Expired_Other", None),
    ("AvailableForPickup_Other", Status.AVAILABLE_FOR_PICKUP),
    ("OutForDelivery_Other", Status.OUT_FOR_DELIVERY),
    ("DeliveryFailure_Other", Status.FAILED_ATTEMPT),
    ("DeliveryFailure_NoBody", Status.FAILED_ATTEMPT),
    ("DeliveryFailure_Security", Status.FAILED_ATTEMPT),
    ("DeliveryFailure_Rejected", Status.REJECTED),
    ("DeliveryFailure_InvalidAddress", Status.FAILED_ATTEMPT),
    ("Delivered_Other", Status.DELIVERED),
    ("Exception_Other", Status.EXCEPTION),
    ("Exception_Returning", Status.RETURNING),
    ("Exception_Returned", Status.RETURNED),
    ("Exception_NoBody", Status.EXCEPTION),
    ("Exception_Security", Status.EXCEPTION),
    ("Exception_Damage", Status.EXCEPTION),
    ("Exception_Rejected", Status.REJECTED),
    ("Exception_Delayed", Status.EXCEPTION),
    ("Exception_Lost", Status.EXCEPTION),
    ("Exception_Destroyed", Status.EXCEPTION),
    ("Exception_Cancel", Status.EXCEPTION),
]


@pytest.mark.parametrize(("sub_status", "status"), SUB_ROWS)
def test_sub_status_rows(sub_status: str, status: Status | None) -> None:
    # a text no rule recognises, so a sub-status that is not a scan status reads as in transit
    scan = only_update(_parse(_data([[_event(text="Update", sub_status=sub_status)]]))).scans[0]
    assert scan.status is (status or Status.IN_TRANSIT)


def test_tables_have_exactly_the_documented_rows() -> None:
    assert set(SUB_STATUSES) == {row[0] for row in SUB_ROWS}
    assert set(MAIN_STATUSES) == {s.partition("_")[0] for s, _ in SUB_ROWS}


@pytest.mark.parametrize(("stage", "row"), sorted(STAGES.items()))
def test_stage_used_without_sub_status(stage: str, row: tuple) -> None:
    scan = only_update(_parse(_data([[_event(sub_status=None, stage=stage)]]))).scans[0]
    assert (scan.status, scan.courier_code) == (row[0], stage)


def test_unknown_sub_status_uses_its_main_status() -> None:
    scan = only_update(_parse(_data([[_event(sub_status="Exception_Held")]]))).scans[0]
    assert scan.status is Status.EXCEPTION


def test_delivered_sign_type_from_text() -> None:
    event = _event(text="已签收，签收人是【门卫】", sub_status="Delivered_Other")
    scan = only_update(_parse(_data([[event]]))).scans[0]
    assert scan.sign_type is SignType.PROXY


def test_events_of_every_provider_and_same_event_one_id() -> None:
    origin = [_event("2024-05-01T10:00:00+08:00", "Posted", "InTransit_PickedUp")]
    destination = [_event("2024-05-06T09:15:00+08:00", "Out for delivery", "OutForDelivery_Other")]
    update = only_update(_parse(_data([origin, destination + origin])))
    assert [s.status for s in update.scans] == [Status.PICKED_UP, Status.OUT_FOR_DELIVERY]


def test_time_iso_and_time_utc_give_one_id() -> None:
    a = only_update(_parse(_data([[_event()]])))
    b_event = _event(time_iso="")
    b_event["time_utc"] = "2024-05-06T01:15:00Z"
    b = only_update(_parse(_data([[b_event]])))
    assert ids(a.scans) == ids(b.scans)


def test_courier_by_provider_name_or_key() -> None:
    data = _data([[_event()]], carrier=100012)
    data["track_info"]["tracking"]["providers"][0]["provider"]["name"] = "SF Express"
    assert only_update(_parse(data)).courier == "SF"
    assert only_update(_parse(_data([[_event()]], carrier=190000))).courier == "190000"


def test_expired_is_a_transit_stall_alert() -> None:
    data = _data([[_event()]], latest_status={"status": "Expired", "sub_status": "Expired_Other"})
    [alert] = only_update(_parse(data)).alerts
    assert (alert.kind, alert.courier_code) == (CourierAlertKind.TRANSIT_STALL, "Expired")


def test_tracking_stopped_is_read() -> None:
    assert len(only_update(_parse(_data([[_event()]]), event="TRACKING_STOPPED")).scans) == 1


def test_other_events_are_ignored() -> None:
    result = FEED.parse(raw_env("17track", '{"event":"SOMETHING_NEW","data":{}}'))
    assert result.ignored and not result.updates


def test_bad_and_missing_times_rejected() -> None:
    events = [_event(), _event(time_iso="2024-02-30T10:00:00+08:00"), {"description": "x"}]
    result = _parse(_data([events]))
    assert [r.reason for r in result.rejected] == ["bad_time", "missing_field"]
    assert len(only_update(result).scans) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "bad_json"),
        ("[]", "bad_shape"),
        ("{}", "missing_field"),
        ('{"event":"TRACKING_UPDATED"}', "missing_field"),
        ('{"event":"TRACKING_UPDATED","data":{"carrier":3011}}', "missing_field"),
        ('{"event":"TRACKING_UPDATED","data":{"number":"X"}}', "missing_field"),
    ],
)
def test_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        FEED.parse(raw_env("17track", body))
    assert err.value.reason == reason


def test_acknowledge() -> None:
    ack = FEED.acknowledge(None, datetime.now(SHANGHAI))
    assert ack.status == 200 and orjson.loads(ack.body) == {"ok": True}
    assert FEED.acknowledge(SignatureInvalid("bad_signature", "x"), datetime.now()).status == 403
