"""The routing decision, pure: an event, the rules and ``now`` in, the messages to queue out.

No Kafka, no database, no network (docs/notify.md "Rules"):
* Every rule whose ``match`` holds contributes its channels; a channel gets one message per
  event, shaped by the first matching rule that names it (language, quiet hours, digest).
* Deduplication key: ``anomaly:<anomaly_id>:<status>:<detected_at>`` (an episode emits
  ``updated`` any number of times, each a new fact worth telling) or ``case:<event_id>``.
  The outbox keeps one row per (key, channel), so a redelivered record queues nothing.
* Quiet hours hold non-critical events until the hours end (in the rule's zone); digest
  windows that close in them merge into one digest sent when they end.
* A digest window batches events of ``digest_severities`` (default: warnings) per channel
  into one message at the end of the epoch-aligned window they arrived in.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.case_event import CaseEvent, case_id_for, case_key
from waybill_watch.notify.model import Fact, Notice, Queued
from waybill_watch.notify.rules import Match, QuietHours, Rule, Rules
from waybill_watch.timefmt import zone

Event = AnomalyEvent | CaseEvent

#: At most this many evidence lines per notice (a chat message is read on a phone).
MAX_FACTS = 4
MAX_TEXT = 120


def notice_for(event: Event, cases_url: str) -> Notice:
    """The language-neutral notice of one event (``cases_url``: the case board's base)."""
    base = cases_url.rstrip("/")
    if isinstance(event, AnomalyEvent):
        case_id = case_id_for(case_key(event))
        upcoming = sorted(event.actions, key=lambda a: a.due_at)
        return Notice(
            kind="anomaly",
            dedupe_key=dedupe_key(event),
            type=event.type,
            severity=event.severity,
            status=event.status,
            scope=event.scope,
            subject=event.subject,
            waybill=event.waybill,
            courier=event.courier,
            merchant=event.merchant,
            site=_site(event.evidence),
            reasons=list(event.reasons),
            at=event.detected_at,
            facts=evidence_facts(event.evidence),
            next_step=upcoming[0].step if upcoming and event.status != "resolved" else None,
            next_due_at=upcoming[0].due_at if upcoming and event.status != "resolved" else None,
            case_id=case_id,
            case_url=f"{base}/cases/{case_id}",
            event=event.model_dump(mode="json"),
        )
    facts = []
    if event.outcome or event.by:
        facts.append(Fact(kind="outcome", values={"outcome": event.outcome, "by": event.by}))
    if event.note:
        facts.append(Fact(kind="note", values={"text": _short(event.note)}))
    return Notice(
        kind="case",
        dedupe_key=dedupe_key(event),
        type=event.type,
        severity=event.severity,
        case_event=event.event,
        scope=event.scope,
        subject=event.subject,
        waybill=event.waybill,
        courier=event.courier,
        merchant=event.merchant,
        at=event.at,
        facts=facts,
        next_step=event.step,
        next_due_at=event.due_at,
        case_id=event.case_id,
        case_url=f"{base}/cases/{event.case_id}",
        event=event.model_dump(mode="json"),
    )


def dedupe_key(event: Event) -> str:
    """The event's identity across redeliveries and restarts."""
    if isinstance(event, AnomalyEvent):
        at = event.detected_at.isoformat(timespec="milliseconds")
        return f"anomaly:{event.anomaly_id}:{event.status}:{at}"
    return f"case:{event.event_id}"


def matches(match: Match, notice: Notice) -> bool:
    """Whether every field the rule gives holds for the notice."""
    checks: list[tuple[list[Any] | None, Any]] = [
        (match.kind, notice.kind),
        (match.type, notice.type),
        (match.severity, notice.severity),
        (match.status, notice.status),
        (match.merchant, notice.merchant),
        (match.courier, notice.courier),
        (match.scope, notice.scope),
        (match.case_event, notice.case_event),
    ]
    return all(
        wanted is None or (value is not None and value in wanted) for wanted, value in checks
    )


def route(event: Event, rules: Rules, now: datetime, cases_url: str) -> list[Queued]:
    """The messages ``event`` makes under ``rules`` at ``now``, one per channel at most."""
    notice = notice_for(event, cases_url)
    return route_notice(notice, rules, now)


def route_notice(notice: Notice, rules: Rules, now: datetime) -> list[Queued]:
    """``route`` for a notice already built."""
    out: list[Queued] = []
    taken: set[str] = set()
    for rule in rules.rules:
        if not matches(rule.match, notice):
            continue
        send_after, digest = schedule(rule, notice, now)
        for channel in rule.channels:
            if channel in taken:
                continue
            taken.add(channel)
            out.append(
                Queued(
                    channel=channel,
                    rule=rule.name,
                    notice=notice,
                    language=rule.language,
                    timezone=rule.timezone,
                    send_after=send_after,
                    digest_key=digest,
                )
            )
    return out


def schedule(rule: Rule, notice: Notice, now: datetime) -> tuple[datetime, str | None]:
    """When the message may go, and its digest key (``None``: on its own)."""
    send_after, digest = now, None
    if rule.digest is not None and notice.severity in rule.digest_severities:
        start, end = digest_window(now, rule.digest)
        send_after = end
        digest = f"{rule.name}@{start.isoformat()}"
    if rule.quiet_hours is not None and notice.severity != "critical":
        held = after_quiet_hours(rule.quiet_hours, send_after)
        if held != send_after and digest is not None:
            # every digest window of the night goes out as one message in the morning
            digest = f"{rule.name}@quiet-until-{held.isoformat()}"
        send_after = held
    return send_after, digest


def digest_window(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The epoch-aligned window ``[start, end)`` holding ``now``."""
    size = window.total_seconds()
    start_s = (now.timestamp() // size) * size
    start = datetime.fromtimestamp(start_s, tz=now.tzinfo)
    return start, start + window


def in_quiet_hours(quiet: QuietHours, at: datetime) -> bool:
    """Whether ``at`` falls in the quiet hours (which may span midnight)."""
    local = at.astimezone(zone(quiet.zone)).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def after_quiet_hours(quiet: QuietHours, at: datetime) -> datetime:
    """``at`` itself outside the quiet hours, else the moment they end."""
    if not in_quiet_hours(quiet, at):
        return at
    tz = zone(quiet.zone)
    local = at.astimezone(tz)
    end = _at_time(local, quiet.end)
    if end <= local:
        end = _at_time(local + timedelta(days=1), quiet.end)
    return end.astimezone(at.tzinfo)


def _at_time(day: datetime, t: time) -> datetime:
    """Wall-clock time ``t`` on ``day``'s date in its zone (DST gaps resolve forward)."""
    naive = datetime.combine(day.date(), t)
    return naive.replace(tzinfo=day.tzinfo)


# -- evidence ---------------------------------------------------------------------------


def _short(text: Any) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def _site(evidence: dict[str, Any]) -> str | None:
    site = evidence.get("site")
    if isinstance(site, str) and site:
        return site
    scans = evidence.get("scans")
    if isinstance(scans, list):
        for scan in reversed(scans):
            if isinstance(scan, dict) and isinstance(scan.get("site"), str) and scan["site"]:
                return str(scan["site"])
    return None


def _scan_fact(kind: str, scan: dict[str, Any]) -> Fact:
    values = {
        "time": scan.get("event_time"),
        "status": scan.get("status"),
        "place": scan.get("site") or scan.get("city"),
        "sign_type": scan.get("sign_type"),
        "signer": scan.get("signer"),
        "reasons": scan.get("reasons"),
        "text": _short(scan["description"]) if scan.get("description") else None,
    }
    return Fact(kind=kind, values={k: v for k, v in values.items() if v})


def _order_fact(kind: str, order: dict[str, Any]) -> Fact:
    values = {
        "type": order.get("type"),
        "time": order.get("occurred_at"),
        "order_id": order.get("order_id"),
        "promised": order.get("promised_delivery_at"),
    }
    return Fact(kind=kind, values={k: v for k, v in values.items() if v})


def evidence_facts(evidence: dict[str, Any]) -> list[Fact]:
    """The few evidence lines worth a chat message: the resolution, the latest scans and
    order event, a courier's own alert, the waybills of a site episode, a feed's silence."""
    facts: list[Fact] = []
    resolved = evidence.get("resolved_by")
    if isinstance(resolved, dict):
        # one fact (the detectors), or lists of them
        for listed in ("scans", "order_events"):
            items = resolved.get(listed)
            if isinstance(items, list) and items and isinstance(items[-1], dict):
                resolved = items[-1]
                break
        if "status" in resolved:
            facts.append(_scan_fact("resolved_scan", resolved))
        elif "type" in resolved:
            facts.append(_order_fact("resolved_order", resolved))
        elif "received_at" in resolved:
            facts.append(Fact(kind="resolved_update", values={"time": resolved["received_at"]}))
    scans = [s for s in evidence.get("scans") or [] if isinstance(s, dict)]
    facts.extend(_scan_fact("scan", s) for s in scans[-2:])
    orders = [o for o in evidence.get("order_events") or [] if isinstance(o, dict)]
    facts.extend(_order_fact("order", o) for o in orders[-1:])
    for alert in [a for a in evidence.get("alerts") or [] if isinstance(a, dict)][-1:]:
        values = {"code": alert.get("courier_code"), "text": _short(alert.get("message") or "")}
        facts.append(Fact(kind="alert", values={k: v for k, v in values.items() if v}))
    waybills = evidence.get("waybills")
    if isinstance(waybills, list) and waybills:
        count = evidence.get("count", evidence.get("open_stalls", len(waybills)))
        facts.append(
            Fact(
                kind="waybills",
                values={
                    "count": count,
                    "threshold": evidence.get("threshold"),
                    "sample": [str(w) for w in waybills[:5]],
                },
            )
        )
    if "updates_in_lookback" in evidence:
        facts.append(
            Fact(
                kind="silence",
                values={
                    "last": evidence.get("last_update_at"),
                    "updates": evidence.get("updates_in_lookback"),
                    "lookback": evidence.get("lookback_minutes"),
                },
            )
        )
    return facts[:MAX_FACTS]
