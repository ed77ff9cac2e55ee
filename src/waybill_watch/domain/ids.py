"""Deterministic identifiers: the same facts give the same id on every run and every machine."""

from __future__ import annotations

from collections.abc import Callable
from hashlib import blake2b

_SEP = "\x1f"


def stable_id(*parts: object, size: int = 16) -> str:
    """A hex digest of ``parts`` (joined with a unit separator) of ``size`` bytes.

    blake2b is fast in CPython and keyed-hash quality is not needed: this only names facts.
    """
    text = _SEP.join("" if p is None else str(p) for p in parts)
    return blake2b(text.encode("utf-8"), digest_size=size).hexdigest()


def scan_event_id(
    waybill: str, courier: str, event_time_iso: str, status_code: str, description: str
) -> str:
    """Identity of one courier scan: the same scan re-pushed in a later trace keeps its id.

    Built from what a courier repeats verbatim in every snapshot (time, code, text), never from
    the push or its position in the trace. Computed for every trace of every push, so it is
    ``stable_id`` written out for string parts (same bytes, same digest).
    """
    text = _SEP.join(
        ("scan", waybill, courier, event_time_iso, status_code or "", description.strip())
    )
    return blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def scan_ids(waybill: str, courier: str) -> Callable[[str, str], str]:
    """``scan_event_id(waybill, courier, event_time_iso, "", description)`` for the traces of
    one waybill, with the shared prefix joined once (a push carries many traces)."""
    prefix = _SEP.join(("scan", waybill, courier, ""))

    def event_id(event_time_iso: str, description: str) -> str:
        text = f"{prefix}{event_time_iso}\x1f\x1f{description.strip()}"  # empty status code
        return blake2b(text.encode("utf-8"), digest_size=16).hexdigest()

    return event_id


def anomaly_id(anomaly_type: str, subject: str, episode: str | int) -> str:
    """Identity of one anomaly episode (contract §6): type + subject + episode."""
    return stable_id("anomaly", anomaly_type, subject, episode)
