"""Shared configuration for wire models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from waybill_watch.timefmt import format_rfc3339

#: An aware datetime written as RFC 3339 with millisecond precision and its offset.
Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(lambda v: format_rfc3339(v), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class WireModel(BaseModel):
    """Strict about unknown shapes, tolerant of extra keys added by newer producers."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)
