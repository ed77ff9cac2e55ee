"""No raw mobile number or recipient name leaves the core in an anomaly event."""

from __future__ import annotations

import re
from dataclasses import replace

from waybill_watch import jsonio
from waybill_watch.domain.types import CourierAlertKind

from .helpers import Driver, alert, at, scan

MOBILE = re.compile(rb"(?<!\d)1[3-9]\d{9}(?!\d)")


def test_every_emitted_event_is_masked() -> None:
    d = Driver()
    site = "杭州西湖驿站(电话13912345678)"
    d.order("shipped", at(-1), city="杭州市")
    d.update(scan("picked_up", at(0), site="上海"), scan("in_transit", at(1), site="杭州"))
    d.update(
        scan(
            "failed_attempt",
            at(3),
            site=site,
            description="派件失败，收件人：王小明 电话13812345678 联系不上",
            code="405",
        )
    )
    spoofed = alert(CourierAlertKind.TRANSIT_STALL, at(4))
    spoofed = replace(spoofed, message="催件 联系人：赵六 15012345678")
    d.update(now=at(4), alerts=(spoofed,))
    d.update(
        scan(
            "delivered",
            at(5),
            site=site,
            city="宁波市",
            sign_type="proxy",
            signer="王小明",
            description="已签收，签收人：王小明，电话13812345678",
        )
    )
    d.order("not_received_reported", at(30))
    d.tick(at(200))

    assert {e.type for e in d.events} >= {
        "delivery_exception",
        "suspicious_signature",
        "signed_not_received",
        "transit_stall",
    }
    for event in d.events:
        raw = jsonio.dumps(event)
        assert MOBILE.search(raw) is None, raw
        assert "王小明".encode() not in raw
        assert "赵六".encode() not in raw
    assert any("138****5678" in jsonio.dumps(e).decode() for e in d.events)
