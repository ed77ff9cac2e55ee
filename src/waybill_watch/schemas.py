"""JSON Schemas of the wire formats, generated from the pydantic models (``make schemas``)."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from waybill_watch.models import AnomalyEvent, CaptureEnvelope, DlqRecord, OrderEvent, TrackingEvent
from waybill_watch.models.case_event import CaseEvent
from waybill_watch.notify.model import DeadLetter

#: File name (contract §3–§7) → (model, mode). Inputs are described as what we accept
#: (validation), outputs as what we write (serialization: every field is present).
SCHEMAS: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {
    "raw-callback.schema.json": (CaptureEnvelope, "validation"),
    "tracking-event.schema.json": (TrackingEvent, "validation"),
    "order-event.schema.json": (OrderEvent, "validation"),
    "anomaly.schema.json": (AnomalyEvent, "serialization"),
    "dlq-record.schema.json": (DlqRecord, "serialization"),
    "case-event.schema.json": (CaseEvent, "serialization"),
    "notification-dlq.schema.json": (DeadLetter, "serialization"),
}


def render(model: type[BaseModel], name: str, mode: JsonSchemaMode) -> bytes:
    """A stable, pretty JSON Schema document."""
    schema = model.model_json_schema(mode=mode)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_schemas(out: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) every schema; returns the names that differ."""
    out.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for name, (model, mode) in SCHEMAS.items():
        path = out / name
        content = render(model, name, mode)
        if not path.exists() or path.read_bytes() != content:
            changed.append(name)
            if not check:
                path.write_bytes(content)
    return changed
