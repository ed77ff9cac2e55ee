"""Events, rules and receivers for the notifier's tests."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from waybill_watch.cases.model import CaseEvent
from waybill_watch.notify.rules import Rules, load_rules

from ..cases.factory import T0, event

__all__ = ["T0", "case_event", "event", "rules_from", "write_rules"]


def case_event(
    kind: str = "step_overdue",
    *,
    event_id: str = "e1",
    step: str | None = "contact_recipient",
    at: datetime = T0,
    severity: str = "critical",
    merchant: str | None = "shop-03",
    **extra: Any,
) -> CaseEvent:
    return CaseEvent.model_validate(
        {
            "event": kind,
            "event_id": event_id,
            "case_id": "C0123456789ABCDE",
            "waybill": "JDVA00353556371",
            "subject": "JDVA00353556371",
            "scope": "waybill",
            "type": "signed_not_received",
            "severity": severity,
            "merchant": merchant,
            "courier": "JD",
            "step": step,
            "due_at": at + timedelta(hours=2) if step else None,
            "state": "pending" if step else None,
            "at": at,
            **extra,
        }
    )


def write_rules(tmp: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rules_from(tmp: Path, text: str) -> Rules:
    return load_rules(write_rules(tmp, text))
