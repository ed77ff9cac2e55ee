"""Durations as people write them in config files: ``"500ms"``, ``"90s"``, ``"30m"``, ``"2h"``,
``"7d"`` (or a number of seconds); shared by the case playbooks and the notify rules."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """A duration from a config value; ``ValueError`` saying how to write one."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"not a duration: {value!r} (write e.g. '500ms', '90s', '30m', '2h' or '7d')")


#: A pydantic field type reading such durations.
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
