"""The dossier: the evidence chain of one case, in order, deduplicated, printable."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from waybill_watch.cases import core
from waybill_watch.cases.model import Case
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.web.dossier import (
    DOSSIER_KIND,
    build_dossier,
    render_dossier_html,
    render_dossier_pdf,
)
from waybill_watch.models.anomaly import AnomalyEvent

CN = ZoneInfo("Asia/Shanghai")
PLAYBOOKS = load_playbooks()
WAYBILL = "SF1409876543210"
SIGNED = datetime(2026, 3, 13, 2, 41, 7, tzinfo=CN)  # 02:41 local: odd hours


def rfc(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


def scan(event_id: str, at: datetime, status: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_time": rfc(at), "status": status, **extra}


PICKUP = scan("e1", SIGNED - timedelta(hours=40), "picked_up", site="上海青浦揽收部", city="上海市")
TRANSIT = scan("e2", SIGNED - timedelta(hours=20), "in_transit", site="杭州转运中心", city="杭州市")
DELIVERED = scan(
    "e3",
    SIGNED,
    "delivered",
    site="杭州西湖文三路营业点",
    city="杭州市",
    sign_type="proxy",
    signer="王*",
    courier_code="304",
    description="【杭州西湖】已签收，签收人：王*",
)
BACK_IN_TRANSIT = scan("e4", SIGNED + timedelta(hours=5), "in_transit", site="杭州转运中心")
REDELIVERED = scan(
    "e5",
    SIGNED + timedelta(hours=30),
    "delivered",
    site="杭州西湖文三路营业点",
    sign_type="recipient",
)
COMPLAINT_1 = {
    "type": "not_received_reported",
    "occurred_at": rfc(SIGNED + timedelta(hours=6)),
    "order_id": "TB20260312884512",
    "merchant": "tea-shop-hz",
}
COMPLAINT_2 = {**COMPLAINT_1, "occurred_at": rfc(SIGNED + timedelta(hours=9))}
SHIPPED = {
    "type": "shipped",
    "occurred_at": rfc(SIGNED - timedelta(hours=41)),
    "order_id": "TB20260312884512",
    "destination_city": "杭州市",
}


def event(
    anomaly_type: str,
    status: str,
    detected: datetime,
    evidence: dict[str, Any],
    reasons: list[str],
    severity: str = "high",
) -> AnomalyEvent:
    return AnomalyEvent.model_validate(
        {
            "anomaly_id": f"a-{anomaly_type}",
            "type": anomaly_type,
            "status": status,
            "severity": severity,
            "scope": "waybill",
            "subject": WAYBILL,
            "waybill": WAYBILL,
            "courier": "SF",
            "merchant": "tea-shop-hz",
            "reasons": reasons,
            "detected_at": detected,
            "evidence": evidence,
        }
    )


def worked_case() -> Case:
    """Suspicious signature at signing, a complaint (then a second), the parcel scanned back
    into transit (status regression) and delivered again; a step done and a note."""
    stream = [
        event(
            "suspicious_signature",
            "open",
            SIGNED + timedelta(minutes=1),
            {
                "scans": [{**DELIVERED, "reasons": ["odd_hours"]}],
                "destination_city": "杭州市",
                "order_events": [SHIPPED],
            },
            ["odd_hours"],
        ),
        event(
            "signed_not_received",
            "open",
            SIGNED + timedelta(hours=6, minutes=1),
            {"order_events": [COMPLAINT_1], "scans": [DELIVERED], "complaints": 1},
            ["not_received_reported"],
            "critical",
        ),
        event(
            "status_regression",
            "open",
            SIGNED + timedelta(hours=7),
            {"scans": [BACK_IN_TRANSIT], "loop_scans": [TRANSIT, PICKUP]},
            ["after_delivery"],
            "warning",
        ),
        event(
            "signed_not_received",
            "updated",
            SIGNED + timedelta(hours=9, minutes=1),
            {"order_events": [COMPLAINT_1, COMPLAINT_2], "scans": [DELIVERED], "complaints": 2},
            ["not_received_reported"],
            "critical",
        ),
        event(
            "status_regression",
            "resolved",
            SIGNED + timedelta(hours=30, minutes=1),
            {"resolved_by": REDELIVERED, "opened_at": rfc(SIGNED + timedelta(hours=7))},
            ["after_delivery"],
            "warning",
        ),
    ]
    case: Case | None = None
    for anomaly in stream:
        decision = core.apply_anomaly(case, anomaly, PLAYBOOKS, anomaly.detected_at)
        assert decision is not None
        case = decision.case
    assert case is not None
    done_at = SIGNED + timedelta(hours=7)
    case = core.complete_step(
        case,
        "contact_recipient",
        "done",
        "no_answer",
        "Called twice <b>no answer</b>",
        "li.na",
        PLAYBOOKS,
        done_at,
    ).case
    return core.add_note(case, "Courier CS ticket 4471 opened", "li.na", done_at).case


def test_header_names_the_case_and_the_order_ids() -> None:
    dossier = build_dossier(worked_case(), PLAYBOOKS, now=SIGNED + timedelta(days=2))
    assert dossier["kind"] == DOSSIER_KIND
    assert dossier["generated_at"] == "2026-03-15T02:41:07.000+08:00"
    header = dossier["case"]
    assert header["waybill"] == WAYBILL
    assert header["order_ids"] == ["TB20260312884512"]
    assert (header["merchant"], header["courier"]) == ("tea-shop-hz", "SF")
    assert header["site"] == "杭州西湖文三路营业点"
    assert header["lane"]["destination_city"] == "杭州市"
    assert header["case_id"] == core.case_id_for(f"waybill:{WAYBILL}")


def test_scan_timeline_is_the_deduplicated_union_in_event_time() -> None:
    dossier = build_dossier(worked_case(), PLAYBOOKS)
    scans = dossier["scans"]
    assert [s["event_id"] for s in scans] == ["e1", "e2", "e3", "e4", "e5"]
    signed = scans[2]
    # cited by two episodes (and three events), listed once, with every citation's detail
    assert signed["cited_by"] == ["suspicious_signature", "signed_not_received"]
    assert signed["reasons"] == ["odd_hours"]
    assert (signed["sign_type"], signed["signer"], signed["courier_code"]) == (
        "proxy",
        "王*",
        "304",
    )
    assert scans[4]["cited_by"] == ["status_regression (resolved it)"]
    assert [s["signing"] for s in scans] == [False, False, True, False, True]


def test_the_signing_scans_are_called_out() -> None:
    signing = build_dossier(worked_case(), PLAYBOOKS)["signing"]
    assert [(s["event_id"], s["sign_type"], s["signer"]) for s in signing] == [
        ("e3", "proxy", "王*"),
        ("e5", "recipient", None),
    ]


def test_order_events_are_deduplicated_and_sorted() -> None:
    orders = build_dossier(worked_case(), PLAYBOOKS)["order_events"]
    assert [(o["type"], o["occurred_at"]) for o in orders] == [
        ("shipped", SHIPPED["occurred_at"]),
        ("not_received_reported", COMPLAINT_1["occurred_at"]),
        ("not_received_reported", COMPLAINT_2["occurred_at"]),
    ]


def test_episodes_steps_notes_and_log() -> None:
    dossier = build_dossier(worked_case(), PLAYBOOKS)
    episodes = {a["type"]: a for a in dossier["anomalies"]}
    assert list(episodes) == ["suspicious_signature", "signed_not_received", "status_regression"]
    snr = episodes["signed_not_received"]
    assert snr["status"] == "updated" and snr["title"] == "Signed, not received"
    assert snr["evidence_summary"]["complaints"] == "2"
    assert "order_events" in snr["evidence_summary"]  # counted, not repeated
    regression = episodes["status_regression"]
    assert regression["resolved_at"] is not None
    assert regression["resolved_by"]["status"] == "delivered"
    assert episodes["suspicious_signature"]["evidence_summary"]["destination_city"] == "杭州市"

    steps = dossier["steps"]
    assert [s["due_at"] for s in steps] == sorted(s["due_at"] for s in steps)
    done = [s for s in steps if s["state"] == "done"]
    assert len(done) == 1
    assert done[0]["step"] == "contact_recipient"
    # due 4 h after the suspicious signature opened, done 7 h after the signing: late
    assert (done[0]["by"], done[0]["outcome_label"], done[0]["on_time"]) == (
        "li.na",
        "Buyer did not answer",
        False,
    )
    assert all(s["on_time"] is None for s in steps if s["state"] == "pending")
    assert dossier["notes"] == [
        {
            "by": "li.na",
            "at": rfc(SIGNED + timedelta(hours=7)),
            "text": "Courier CS ticket 4471 opened",
        }
    ]
    whats = [e["what"] for e in dossier["log"]]
    assert whats[0] == "opened" and "step_done" in whats and whats[-1] == "note"
    orjson.dumps(dossier)  # plain JSON for the REST API


def test_html_is_printable_self_contained_escaped_and_in_order() -> None:
    html = render_dossier_html(build_dossier(worked_case(), PLAYBOOKS))
    headings = ["1. Case", "2. Signing", "3. Scan timeline", "4. Order events", "5. Anomaly"]
    headings += ["6. Steps taken", "7. Notes", "8. Activity log"]
    positions = [html.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "@media print" in html and "@page" in html
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert "Called twice &lt;b&gt;no answer&lt;/b&gt;" in html
    assert "2026-03-13 02:41:07" in html  # the signing, local time
    assert "王*" in html and "proxy" in html


def test_html_times_follow_the_zone() -> None:
    html = render_dossier_html(build_dossier(worked_case(), PLAYBOOKS), tz="UTC")
    assert "2026-03-12 18:41:07" in html and "(UTC)" in html


def test_pdf_is_none_without_chromium(tmp_path: Any) -> None:
    assert render_dossier_pdf("<p>x</p>", chromium=tmp_path / "no-chromium") is None
