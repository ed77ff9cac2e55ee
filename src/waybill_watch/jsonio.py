"""orjson helpers: one place that decides how JSON is written on the wire."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

_OPTS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """Serialise plain data or a pydantic model to compact JSON bytes."""
    if isinstance(value, BaseModel):
        return orjson.dumps(value.model_dump(mode="json", exclude_none=False), option=_OPTS)
    return orjson.dumps(value, option=_OPTS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON bytes or text."""
    return orjson.loads(data)
