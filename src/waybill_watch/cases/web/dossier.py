"""The dossier: a case's evidence chain, in the order a platform or the postal regulator reads it.

A complaint about a parcel "signed but not received" is judged on the record: which scans the
courier reported and when, who signed and how, what the buyer said, and what the merchant did
about it and when. ``build_dossier`` gathers that from the case document alone (the scans and
order events every anomaly episode carried as evidence, the steps, notes and activity log) so
the REST API can return it as JSON and the pages can print it; personal data in the evidence
was masked upstream, before it was ever stored.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from waybill_watch.cases.model import AnomalyRef, Case
from waybill_watch.cases.playbooks import Playbooks
from waybill_watch.cases.review import lane_of
from waybill_watch.cases.web import as_instant, environment
from waybill_watch.timefmt import DEFAULT_ZONE, format_rfc3339, utc_now

log = logging.getLogger(__name__)

DOSSIER_KIND = "waybill-watch case dossier"
DOSSIER_VERSION = 1
CHROMIUM = Path("/usr/bin/chromium")

#: Evidence keys holding scan lists (contract §6 evidence shapes of the detectors).
SCAN_LISTS = ("scans", "loop_scans")
ORDER_LISTS = ("order_events",)
_SCAN_FIELDS = (
    "event_id",
    "event_time",
    "status",
    "sign_type",
    "signer",
    "site",
    "city",
    "courier_code",
    "description",
)
_ORDER_FIELDS = ("type", "occurred_at", "order_id", "merchant", "destination_city")
_LATEST = datetime.max.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def _is_scan(value: Any) -> bool:
    return isinstance(value, dict) and "status" in value and "event_time" in value


def _is_order_event(value: Any) -> bool:
    return isinstance(value, dict) and "type" in value and "occurred_at" in value


def _sources(ref: AnomalyRef) -> Iterable[tuple[str, dict[str, Any]]]:
    """Each evidence object of an episode with the role it played (cited or resolving)."""
    yield ref.type, ref.evidence
    by = ref.resolved_by
    if isinstance(by, dict) and by:
        yield f"{ref.type} (resolved it)", by


def scans_in(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The scans an evidence object lists (or is: a ``resolved_by`` scan), as cited."""
    found = [s for key in SCAN_LISTS for s in evidence.get(key) or [] if _is_scan(s)]
    if _is_scan(evidence):
        found.append(dict(evidence))
    return found


def order_events_in(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The order events an evidence object lists (or is), as cited."""
    found = [o for key in ORDER_LISTS for o in evidence.get(key) or [] if _is_order_event(o)]
    if _is_order_event(evidence):
        found.append(dict(evidence))
    return found


def _time_key(value: Any, tiebreak: str) -> tuple[datetime, str]:
    return (as_instant(value) or _LATEST, tiebreak)


def in_time_order(items: Iterable[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """Evidence items sorted by the instant in ``field`` (unreadable times last)."""
    return sorted(items, key=lambda i: _time_key(i.get(field), str(i.get("event_id") or "")))


def scan_timeline(case: Case) -> list[dict[str, Any]]:
    """Every scan any episode cited or was resolved by, once per ``event_id``, in event time.

    Each entry says which episodes cited it (``cited_by``) and whether it is a signing
    (``signing``: a ``delivered`` scan, whose ``sign_type`` and ``signer`` matter most).
    """
    merged: dict[str, dict[str, Any]] = {}
    for ref in case.anomalies:
        for role, evidence in _sources(ref):
            for scan in scans_in(evidence):
                key = str(
                    scan.get("event_id")
                    or f"{scan.get('event_time')}|{scan.get('status')}|{scan.get('site')}"
                )
                entry = merged.get(key)
                if entry is None:
                    entry = {f: scan.get(f) for f in _SCAN_FIELDS}
                    entry["reasons"], entry["cited_by"] = [], []
                    merged[key] = entry
                for field in _SCAN_FIELDS:  # a later citation may carry more detail
                    if entry.get(field) is None and scan.get(field) is not None:
                        entry[field] = scan[field]
                for reason in scan.get("reasons") or []:
                    if reason not in entry["reasons"]:
                        entry["reasons"].append(str(reason))
                if role not in entry["cited_by"]:
                    entry["cited_by"].append(role)
    timeline = sorted(
        merged.values(), key=lambda s: _time_key(s["event_time"], str(s["event_id"] or ""))
    )
    for scan in timeline:
        scan["signing"] = scan.get("status") == "delivered"
    return timeline


def order_events(case: Case) -> list[dict[str, Any]]:
    """The merchant's order events in the evidence (shipped, complaints, confirmations),
    once each, in the time they occurred."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for ref in case.anomalies:
        for role, evidence in _sources(ref):
            for event in order_events_in(evidence):
                key = tuple(event.get(f) for f in ("type", "occurred_at", "order_id"))
                entry = merged.setdefault(key, {f: event.get(f) for f in _ORDER_FIELDS})
                entry.setdefault("cited_by", [])
                if role not in entry["cited_by"]:
                    entry["cited_by"].append(role)
    return sorted(merged.values(), key=lambda e: _time_key(e["occurred_at"], str(e["type"] or "")))


def _summary_value(key: str, value: Any) -> str | None:
    if value is None or key in (*SCAN_LISTS, *ORDER_LISTS, "waybills", "resolved_by", "lane"):
        return None
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            shown = ", ".join(str(v) for v in value[:20])
            return shown + (f" (+{len(value) - 20} more)" if len(value) > 20 else "")
        return f"{len(value)} items"
    return str(value)


def evidence_summary(evidence: Mapping[str, Any], *, pointers: bool = True) -> dict[str, str]:
    """The evidence fields that are not scans or order events (counts, thresholds, cities),
    as text; scans and order events appear once, in the timelines (``pointers`` says how
    many each list held, for readers of the dossier who look for them)."""
    out: dict[str, str] = {}
    for key, value in evidence.items():
        text = _summary_value(str(key), value)
        if text:
            out[str(key)] = text
    if not pointers:
        return out
    for key in SCAN_LISTS:
        if evidence.get(key):
            out[key] = f"{len(evidence[key])} listed in the scan timeline"
    if evidence.get("order_events"):
        out["order_events"] = f"{len(evidence['order_events'])} listed in the order events"
    return out


def _anomaly(ref: AnomalyRef, playbooks: Playbooks) -> dict[str, Any]:
    resolved_by = ref.resolved_by if isinstance(ref.resolved_by, dict) else None
    waybills = ref.evidence.get("waybills")
    return {
        "anomaly_id": ref.anomaly_id,
        "type": ref.type,
        "title": playbooks.for_type(ref.type).title,
        "severity": ref.severity,
        "status": ref.status,
        "reasons": list(ref.reasons),
        "opened_at": _iso(ref.opened_at),
        "last_at": _iso(ref.last_at),
        "resolved_at": _iso(ref.resolved_at),
        "evidence_summary": evidence_summary(ref.evidence),
        "waybills": [str(w) for w in waybills] if isinstance(waybills, list) else [],
        "resolved_by": evidence_summary(resolved_by) if resolved_by else None,
    }


def build_dossier(
    case: Case, playbooks: Playbooks, *, now: datetime | None = None
) -> dict[str, Any]:
    """The evidence chain of ``case`` as plain JSON-ready data (RFC 3339 strings for times).

    Order: header, scan timeline (signing scans called out), order events, anomaly
    episodes, steps, notes, activity log. ``now`` stamps ``generated_at`` (default: the
    wall clock).
    """
    scans = scan_timeline(case)
    orders = order_events(case)
    order_ids = list(dict.fromkeys(str(o["order_id"]) for o in orders if o.get("order_id")))
    steps = []
    for step in sorted(case.steps, key=lambda s: (s.due_at, s.step)):
        spec = playbooks.step_spec(step.anomaly_type, step.step)
        steps.append(
            {
                "step": step.step,
                "title": (spec.title if spec else "") or step.title or step.step,
                "anomaly_type": step.anomaly_type,
                "due_at": _iso(step.due_at),
                "state": step.state,
                "by": step.by,
                "at": _iso(step.at),
                "outcome": step.outcome,
                "outcome_label": playbooks.step_outcomes.get(step.outcome or ""),
                "note": step.note,
                "on_time": step.on_time if step.state in ("done", "skipped") else None,
            }
        )
    return {
        "kind": DOSSIER_KIND,
        "version": DOSSIER_VERSION,
        "generated_at": format_rfc3339(now or utc_now()),
        "case": {
            "case_id": case.case_id,
            "scope": case.scope,
            "subject": case.subject,
            "waybill": case.waybill,
            "waybills": list(case.waybills),
            "order_ids": order_ids,
            "merchant": case.merchant,
            "courier": case.courier,
            "site": case.site,
            "lane": {
                "origin_city": case.origin_city,
                "destination_city": case.destination_city,
                "label": lane_of(case.origin_city, case.destination_city),
            },
            "type": case.type,
            "title": playbooks.for_type(case.type).title,
            "severity": case.severity,
            "status": case.status,
            "outcome": case.outcome,
            "outcome_label": playbooks.outcomes.get(case.outcome or ""),
            "opened_at": _iso(case.opened_at),
            "closed_at": _iso(case.closed_at),
            "closed_by": case.closed_by,
            "opening": case.opening,
        },
        "signing": [s for s in scans if s["signing"]],
        "scans": scans,
        "order_events": orders,
        "anomalies": [_anomaly(ref, playbooks) for ref in case.anomalies],
        "steps": steps,
        "notes": [{"by": n.by, "at": _iso(n.at), "text": n.text} for n in case.notes],
        "log": [
            {"at": _iso(e.at), "by": e.by, "what": e.what, "detail": dict(e.detail)}
            for e in case.log
        ],
    }


def render_dossier_html(dossier: Mapping[str, Any], *, tz: str = DEFAULT_ZONE) -> str:
    """A self-contained printable page (inline print CSS, no external assets), times in
    ``tz``: what gets attached to a platform ticket or a regulator complaint."""
    return environment(tz).get_template("dossier.html").render(d=dossier)


def render_dossier_pdf(
    html: str, *, chromium: Path | str = CHROMIUM, timeout: float = 60.0
) -> bytes | None:
    """The page printed to PDF by headless Chromium; ``None`` when Chromium is not installed
    or fails (the HTML page is always available). Blocking: call it from a worker thread."""
    exe = Path(chromium)
    if not exe.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="ww-dossier-") as tmp:
        source, target = Path(tmp) / "dossier.html", Path(tmp) / "dossier.pdf"
        source.write_text(html, encoding="utf-8")
        command = [
            str(exe),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("dossier PDF: chromium did not run: %s", exc)
            return None
        if not target.exists() or target.stat().st_size == 0:
            log.warning(
                "dossier PDF: chromium exited %s without a PDF: %s",
                done.returncode,
                done.stderr.decode("utf-8", "replace")[-500:],
            )
            return None
        return target.read_bytes()
