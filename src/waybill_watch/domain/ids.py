"""Deterministic identifiers: the same facts give the same id on every run and every machine."""

from __future__ import annotations

import hashlib


def stable_id(*parts: object, size: int = 16) -> str:
    """A hex digest of ``parts`` (joined with a unit separator) of ``size`` bytes.

    blake2b is fast in CPython and keyed-hash quality is not needed: this only names facts.
    """
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size).hexdigest()


def scan_event_id(
    waybill: str, courier: str, event_time_iso: str, status_code: str, description: str
) -> str:
    """Identity of one courier scan: the same scan re-pushed in a later trace keeps its id.

    Built from what a courier repeats verbatim in every snapshot (time, code, text), never from
    the push or its position in the trace.
    """
    return stable_id("scan", waybill, courier, event_time_iso, status_code, description.strip())


def anomaly_id(anomaly_type: str, subject: str, episode: str | int) -> str:
    """Identity of one anomaly episode (contract §6): type + subject + episode."""
    return stable_id("anomaly", anomaly_type, subject, episode)
