"""Routing, pure: matching, dedupe keys, quiet hours, digests, the case link."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from waybill_watch.cases.core import case_id_for, case_key
from waybill_watch.notify import core
from waybill_watch.timefmt import zone

from .helpers import T0, case_event, event, rules_from

SH = zone("Asia/Shanghai")
URL = "http://cases.example:6067/"

RULES = """
[channels.ops]
type = "log"
[channels.mail]
type = "log"
[channels.shop]
type = "log"
[channels.digest]
type = "log"

[[rules]]
name = "critical"
match = { severity = ["critical", "high"], kind = "anomaly" }
channels = ["ops", "mail"]

[[rules]]
name = "shop-03-en"
match = { merchant = "shop-03" }
channels = ["shop", "ops"]
language = "en"

[[rules]]
name = "overdue"
match = { case_event = "step_overdue" }
channels = ["mail"]

[[rules]]
name = "warnings"
match = { severity = "warning", status = "open" }
channels = ["digest"]
digest = "15m"
quiet_hours = { start = "22:00", end = "08:00" }
"""


@pytest.fixture
def rules(tmp_path: Path):  # type: ignore[no-untyped-def]
    return rules_from(tmp_path, RULES)


def test_every_matching_rule_contributes_one_message_per_channel(rules) -> None:  # type: ignore[no-untyped-def]
    queued = core.route(event(), rules, T0, URL)
    assert [(q.channel, q.rule, q.language) for q in queued] == [
        ("ops", "critical", "zh"),
        ("mail", "critical", "zh"),
        ("shop", "shop-03-en", "en"),
    ]
    assert all(q.send_after == T0 and q.digest_key is None for q in queued)


def test_fields_an_event_lacks_never_match(rules) -> None:  # type: ignore[no-untyped-def]
    # a case event has no anomaly status; an anomaly has no case_event
    overdue = core.route(case_event(merchant=None), rules, T0, URL)
    assert [q.channel for q in overdue] == ["mail"]
    done = core.route(case_event("step_done", merchant=None), rules, T0, URL)
    assert done == []


def test_dedupe_keys_tell_updates_apart_and_case_events_by_id() -> None:
    first = event(status="updated", at=T0)
    again = event(status="updated", at=T0 + timedelta(minutes=5))
    keys = {core.dedupe_key(first), core.dedupe_key(again), core.dedupe_key(event(at=T0))}
    assert len(keys) == 3
    assert core.dedupe_key(first) == core.dedupe_key(event(status="updated", at=T0))
    assert core.dedupe_key(case_event(event_id="abc")) == "case:abc"


def test_notice_links_the_case_and_names_the_next_step() -> None:
    anomaly = event()
    notice = core.notice_for(anomaly, URL)
    assert notice.case_id == case_id_for(case_key(anomaly))
    assert notice.case_url == f"http://cases.example:6067/cases/{notice.case_id}"
    assert notice.next_step == "contact_recipient"
    assert notice.next_due_at == T0 + timedelta(hours=2)
    assert notice.site == "石家庄长安区建设路营业部"
    assert [f.kind for f in notice.facts] == ["scan", "order"]
    case = core.notice_for(case_event(), URL)
    assert case.case_url.endswith("/cases/C0123456789ABCDE")
    assert (case.next_step, case.next_due_at) == ("contact_recipient", T0 + timedelta(hours=2))


def test_resolved_anomaly_has_no_next_step_and_tells_what_resolved_it() -> None:
    notice = core.notice_for(event(status="resolved"), URL)
    assert notice.next_step is None
    assert notice.facts[0].kind == "resolved_order"


def at(hour: int, minute: int = 0, day: int = 5) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


def warning(when: datetime):  # type: ignore[no-untyped-def]
    return event("transit_stall", severity="warning", at=when, actions=False)


def test_digest_batches_warnings_into_the_window_they_arrived_in(rules) -> None:  # type: ignore[no-untyped-def]
    a = core.route(warning(at(10, 1)), rules, at(10, 1), URL)
    b = core.route(warning(at(10, 14)), rules, at(10, 14), URL)
    c = core.route(warning(at(10, 16)), rules, at(10, 16), URL)
    digest = [next(q for q in r if q.channel == "digest") for r in (a, b, c)]
    assert digest[0].digest_key == digest[1].digest_key != digest[2].digest_key
    assert digest[0].send_after == at(10, 15)
    assert digest[2].send_after == at(10, 30)


def test_quiet_hours_hold_non_critical_until_they_end(rules) -> None:  # type: ignore[no-untyped-def]
    late = core.route(warning(at(23, 10)), rules, at(23, 10), URL)
    early = core.route(warning(at(3, 0, day=6)), rules, at(3, 0, day=6), URL)
    (late_d,) = [q for q in late if q.channel == "digest"]
    (early_d,) = [q for q in early if q.channel == "digest"]
    assert late_d.send_after == early_d.send_after == at(8, 0, day=6)
    # the night's digest windows merge into one morning digest
    assert late_d.digest_key == early_d.digest_key


def test_critical_events_ignore_quiet_hours(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        [channels.ops]
        type = "log"
        [[rules]]
        channels = ["ops"]
        quiet_hours = { start = "22:00", end = "08:00", zone = "Asia/Shanghai" }
        """,
    )
    night = at(23, 30)
    critical = core.route(event(at=night), rules, night, URL)
    high = core.route(event("delivery_exception", severity="high", at=night), rules, night, URL)
    assert critical[0].send_after == night
    assert high[0].send_after == at(8, 0, day=6)


def test_quiet_hours_within_one_day(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        [channels.ops]
        type = "log"
        [[rules]]
        channels = ["ops"]
        quiet_hours = { start = "12:00", end = "13:30", zone = "UTC" }
        """,
    )
    quiet = rules.rules[0].quiet_hours
    assert quiet is not None
    noon = datetime(2026, 11, 5, 12, 10, tzinfo=zone("UTC"))
    assert core.in_quiet_hours(quiet, noon)
    assert core.after_quiet_hours(quiet, noon) == noon.replace(hour=13, minute=30)
    assert not core.in_quiet_hours(quiet, noon.replace(hour=14))


def test_bulk_signing_evidence_lists_waybills() -> None:
    bulk = event(
        "bulk_signing",
        scope="site",
        subject="ZTO:杭州西湖站",
        severity="high",
        evidence={"site": "杭州西湖站", "count": 23, "threshold": 20, "waybills": ["A", "B", "C"]},
    )
    notice = core.notice_for(bulk, URL)
    assert notice.site == "杭州西湖站"
    assert notice.facts[0].values == {"count": 23, "threshold": 20, "sample": ["A", "B", "C"]}
    assert notice.case_id == case_id_for(f"episode:{bulk.anomaly_id}")
