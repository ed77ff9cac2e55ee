"""AfterShip webhooks: HMAC header, tag/subtag tables, identity across deliveries, alerts."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from waybill_watch.domain.types import CourierAlertKind, SignType, Status
from waybill_watch.feeds.aftership import AfterShipFeed, delivery_id
from waybill_watch.feeds.aftership_codes import SUBTAGS, TAGS
from waybill_watch.feeds.base import (
    FeedConfig,
    MalformedBody,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)
from waybill_watch.feeds.encode import aftership_push

from .helpers import SHANGHAI, env, ids, only_update, raw_env
from .vectors import AFTERSHIP_BODY, AFTERSHIP_SECRET, AFTERSHIP_SIGNATURE

FEED = AfterShipFeed()


def _checkpoint(
    subtag: str | None = "InTransit_001",
    message: str = "Arrived at facility",
    time: str = "2024-05-06T09:15:00",
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"checkpoint_time": time, "message": message, "location": "Hangzhou"}
    if subtag is not None:
        out["subtag"] = subtag
        out["tag"] = subtag.partition("_")[0]
    return {**out, **extra}


def _msg(checkpoints: list[dict], slug: str = "zto-express", **extra: Any) -> dict[str, Any]:
    return {"tracking_number": "ZT9", "slug": slug, "checkpoints": checkpoints, **extra}


def _parse(msg: dict, **kwargs: Any):
    return FEED.parse(env("aftership", aftership_push(msg, None, **kwargs)))


class TestSignature:
    keyed = AfterShipFeed(FeedConfig(secret=AFTERSHIP_SECRET))

    def test_reference_vector_independently(self) -> None:
        mac = hmac.new(AFTERSHIP_SECRET.encode(), AFTERSHIP_BODY.encode(), hashlib.sha256)
        assert base64.b64encode(mac.digest()).decode() == AFTERSHIP_SIGNATURE

    def test_verify(self) -> None:
        self.keyed.verify({"aftership-hmac-sha256": AFTERSHIP_SIGNATURE}, AFTERSHIP_BODY.encode())

    def test_wrong_missing_unsigned(self) -> None:
        body = AFTERSHIP_BODY.encode()
        with pytest.raises(SignatureInvalid):
            self.keyed.verify({"aftership-hmac-sha256": AFTERSHIP_SIGNATURE}, body[:-1])
        with pytest.raises(SignatureInvalid):
            self.keyed.verify({"aftership-hmac-sha256": AFTERSHIP_SIGNATURE.lower()}, body)
        with pytest.raises(SignatureMissing):
            self.keyed.verify({"am-webhook-signature": AFTERSHIP_SIGNATURE}, body)
        with pytest.raises(UnsignedNotAllowed):
            AfterShipFeed().verify({}, body)

    def test_encoder_signs(self) -> None:
        body, headers = aftership_push(_msg([_checkpoint()]), "s")
        AfterShipFeed(FeedConfig(secret="s")).verify(headers, body)


def test_reference_body() -> None:
    update = only_update(FEED.parse(raw_env("aftership", AFTERSHIP_BODY)))
    assert (update.waybill, update.courier) == ("1Z0000000000000004", "UPS")
    [scan] = update.scans
    assert (scan.status, scan.courier_code, scan.city) == (
        Status.EXCEPTION,
        "Exception_007",
        "Hangzhou",
    )
    assert scan.event_time == datetime(2024, 5, 6, 9, 15, tzinfo=SHANGHAI)
    assert scan.description == "Address information is incorrect"
    assert (
        delivery_id(raw_env("aftership", AFTERSHIP_BODY)) == "00000000-0000-4000-8000-000000000001"
    )


SUBTAG_ROWS: list[tuple[str, Status | None, SignType | None]] = [
    ("Pending_001", Status.INFO_RECEIVED, None),
    ("InfoReceived_001", Status.INFO_RECEIVED, None),
    ("InTransit_001", Status.IN_TRANSIT, None),
    ("InTransit_002", Status.PICKED_UP, None),
    ("InTransit_003", Status.IN_TRANSIT, None),
    ("InTransit_004", Status.IN_TRANSIT, None),
    ("InTransit_005", Status.CUSTOMS, None),
    ("InTransit_006", Status.CUSTOMS, None),
    ("InTransit_007", Status.IN_TRANSIT, None),
    ("InTransit_008", Status.IN_TRANSIT, None),
    ("InTransit_009", Status.IN_TRANSIT, None),
    ("OutForDelivery_001", Status.OUT_FOR_DELIVERY, None),
    ("OutForDelivery_003", Status.OUT_FOR_DELIVERY, None),
    ("OutForDelivery_004", Status.OUT_FOR_DELIVERY, None),
    ("AvailableForPickup_001", Status.AVAILABLE_FOR_PICKUP, None),
    ("Delivered_001", Status.DELIVERED, SignType.UNKNOWN),
    ("Delivered_002", Status.DELIVERED, SignType.STATION),
    ("Delivered_003", Status.DELIVERED, SignType.RECIPIENT),
    ("Delivered_004", Status.DELIVERED, SignType.UNKNOWN),
    ("Delivered_005", Status.DELIVERED, SignType.PROXY),
    ("AttemptFail_001", Status.FAILED_ATTEMPT, None),
    ("AttemptFail_002", Status.FAILED_ATTEMPT, None),
    ("AttemptFail_003", Status.FAILED_ATTEMPT, None),
    ("Exception_001", Status.EXCEPTION, None),
    ("Exception_002", Status.EXCEPTION, None),
    ("Exception_003", Status.REJECTED, None),
    ("Exception_004", Status.EXCEPTION, None),
    ("Exception_005", Status.EXCEPTION, None),
    ("Exception_006", Status.EXCEPTION, None),
    ("Exception_007", Status.EXCEPTION, None),
    ("Exception_008", Status.EXCEPTION, None),
    ("Exception_009", Status.EXCEPTION, None),
    ("Exception_010", Status.RETURNING, None),
    ("Exception_011", Status.RETURNED, None),
    ("Exception_012", Status.EXCEPTION, None),
    ("Exception_013", Status.EXCEPTION, None),
    ("Exception_016", Status.EXCEPTION, None),
    ("Exception_017", Status.EXCEPTION, None),
    ("Exception_018", Status.EXCEPTION, None),
    ("Expired_001", None, None),
]


@pytest.mark.parametrize(("subtag", "status", "sign_type"), SUBTAG_ROWS)
def test_subtag_rows(subtag: str, status: Status | None, sign_type: SignType | None) -> None:
    scan = only_update(_parse(_msg([_checkpoint(subtag, "Update")]))).scans[0]
    assert (scan.status, scan.sign_type) == (status or Status.IN_TRANSIT, sign_type)


def test_tables_have_exactly_the_documented_rows() -> None:
    assert set(SUBTAGS) == {row[0] for row in SUBTAG_ROWS}
    assert set(TAGS) == {row[0].partition("_")[0] for row in SUBTAG_ROWS}


def test_delivered_002_locker_from_text() -> None:
    cp = _checkpoint("Delivered_002", "已从【丰巢智能柜】取件")
    assert only_update(_parse(_msg([cp]))).scans[0].sign_type is SignType.LOCKER


def test_tag_without_subtag_and_unknown_subtag() -> None:
    cp = {"checkpoint_time": "2024-05-06T09:15:00", "message": "x", "tag": "AttemptFail"}
    assert only_update(_parse(_msg([cp]))).scans[0].status is Status.FAILED_ATTEMPT
    cp = _checkpoint("Exception_099")
    assert only_update(_parse(_msg([cp]))).scans[0].status is Status.EXCEPTION


@pytest.mark.parametrize(
    ("slug", "courier"),
    [
        ("sf-express", "SF"),
        ("yto", "YTO"),
        ("jtexpress", "JTSD"),
        ("china-ems", "EMS"),
        ("ups", "UPS"),
    ],
)
def test_courier_slugs(slug: str, courier: str) -> None:
    assert only_update(_parse(_msg([_checkpoint()], slug=slug))).courier == courier


def test_re_delivery_with_new_event_id_keeps_scan_ids() -> None:
    checkpoints = [_checkpoint("InTransit_002", "Picked up", "2024-05-05T18:00:00"), _checkpoint()]
    a = only_update(_parse(_msg(checkpoints), event_id="a"))
    b = only_update(_parse(_msg(checkpoints[::-1]), event_id="b"))
    c = only_update(_parse(_msg(checkpoints[:1]), event_id="c"))
    assert ids(a.scans) == ids(b.scans)
    assert ids(c.scans) == ids(a.scans)[:1]


def test_checkpoint_time_with_offset_is_kept() -> None:
    cp = _checkpoint(time="2024-05-06T01:15:00+00:00")
    scan = only_update(_parse(_msg([cp]))).scans[0]
    assert scan.event_time == datetime(2024, 5, 6, 1, 15, tzinfo=UTC)


def test_pending_time_event_is_an_alert() -> None:
    update = only_update(
        _parse(_msg([], tag="Pending"), event="tracking_pending_time", ts=1714960500)
    )
    [alert] = update.alerts
    assert alert.kind is CourierAlertKind.NO_FIRST_SCAN
    assert alert.reported_at == datetime(2024, 5, 6, 1, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("checkpoints", "kind"),
    [([], CourierAlertKind.NO_FIRST_SCAN), ([_checkpoint()], CourierAlertKind.TRANSIT_STALL)],
)
def test_expired_tag_is_an_alert(checkpoints: list, kind: CourierAlertKind) -> None:
    update = only_update(_parse(_msg(checkpoints, tag="Expired")))
    assert [(a.kind, a.courier_code) for a in update.alerts] == [(kind, "Expired")]


def test_bad_ts_rejects_the_alert() -> None:
    result = _parse(_msg([_checkpoint()], tag="Expired"), ts="soon")  # type: ignore[arg-type]
    assert [r.reason for r in result.rejected] == ["bad_time"]
    assert only_update(result).alerts == []


def test_bad_checkpoints_rejected_others_kept() -> None:
    checkpoints = [_checkpoint(), _checkpoint(time="2024-02-30T00:00:00"), {"message": "x"}, 7]
    result = _parse(_msg(checkpoints))
    assert [r.reason for r in result.rejected] == ["bad_time", "missing_field", "bad_shape"]
    assert len(only_update(result).scans) == 1


def test_event_without_tracking_is_ignored() -> None:
    assert FEED.parse(raw_env("aftership", '{"event":"edd_revise"}')).ignored


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("nope", "bad_json"),
        ("[]", "bad_shape"),
        ('{"msg":{}}', "missing_field"),
        ('{"event":"tracking_update","msg":3}', "bad_shape"),
        ('{"event":"tracking_update","msg":{"slug":"ups"}}', "missing_field"),
        ('{"event":"tracking_update","msg":{"tracking_number":"1"}}', "missing_field"),
        ('{"event":"x","msg":{"tracking_number":"1","slug":"u","checkpoints":{}}}', "bad_shape"),
    ],
)
def test_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedBody) as err:
        FEED.parse(raw_env("aftership", body))
    assert err.value.reason == reason


def test_acknowledge() -> None:
    assert FEED.acknowledge(None, datetime.now(UTC)).status == 200
    assert (
        FEED.acknowledge(SignatureMissing("missing_signature", "x"), datetime.now(UTC)).status
        == 401
    )
