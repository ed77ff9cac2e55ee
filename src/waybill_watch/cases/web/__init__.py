"""Server-rendered pages for the people who work the cases (contract §9).

``pages.add_page_routes`` mounts the queue, case, review and dossier pages on an aiohttp app;
``dossier.build_dossier`` / ``render_dossier_html`` / ``render_dossier_pdf`` make the evidence
chain a platform or the postal regulator asks for; ``auth`` signs people in.

This module holds what the pages and the dossier share: one Jinja environment (autoescape on,
templates packaged next to it) and the filters that show instants in the app's time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from waybill_watch.timefmt import DEFAULT_ZONE, TimeParseError, parse_rfc3339, zone

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def as_instant(value: Any) -> datetime | None:
    """A datetime, or an RFC 3339 string from evidence read as one; anything else ``None``."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str) and value:
        try:
            return parse_rfc3339(value)
        except TimeParseError:
            return None
    return None


def local_time(value: Any, tz: str = DEFAULT_ZONE, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant as wall-clock time in ``tz``; unreadable values shown as they are."""
    instant = as_instant(value)
    if instant is None:
        return "" if value is None else str(value)
    return instant.astimezone(zone(tz)).strftime(fmt)


def iso(value: Any) -> str:
    """The instant for a ``<time datetime>`` attribute (machine-readable, with offset)."""
    instant = as_instant(value)
    return instant.isoformat() if instant is not None else ""


def span(delta: timedelta) -> str:
    """A duration the way people say it at a glance: ``45 m``, ``3 h 10 m``, ``2 d 4 h``."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} m" if mins else f"{hours} h"
    return f"{mins} m"


def relative(value: Any, now: datetime) -> str:
    """``in 2 h``, ``3 h ago`` relative to ``now`` (the service clock, not the browser's)."""
    instant = as_instant(value)
    if instant is None:
        return ""
    delta = instant - now
    if abs(delta) < timedelta(minutes=1):
        return "now"
    return f"in {span(delta)}" if delta > timedelta(0) else f"{span(delta)} ago"


def detail_text(
    detail: Any, tz: str = DEFAULT_ZONE, skip: tuple[str, ...] = (), keys: bool = False
) -> str:
    """An activity-log entry's detail as one line: instants in ``tz``, lists joined,
    ``skip`` keys (ids people never read) left out; ``keys`` prefixes each value with its key."""
    if not isinstance(detail, dict):
        return ""
    parts = []
    for key, value in detail.items():
        if key in skip or value is None or value == []:
            continue
        if isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value)
        elif as_instant(value) is not None:
            text = local_time(value, tz, "%Y-%m-%d %H:%M:%S")
        else:
            text = str(value)
        parts.append(f"{key}={text}" if keys else text)
    return "; ".join(parts) if keys else " · ".join(parts)


def hours(value: float | None) -> str:
    """Mean hours to close, one decimal (``–`` when nothing closed)."""
    return "–" if value is None else f"{value:.1f}"


def percent(value: float | None) -> str:
    """A share as a whole percentage (``–`` when undefined)."""
    return "–" if value is None else f"{value * 100:.0f}%"


def humanize(code: Any) -> str:
    """``contact_recipient`` → ``Contact recipient`` for codes that have no label."""
    text = str(code or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=8)
def environment(tz: str = DEFAULT_ZONE) -> Environment:
    """The shared Jinja environment for zone ``tz`` (cached: templates compile once)."""
    zone(tz)  # fail at start for an unknown zone, not on the first page
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = lambda v, fmt="%Y-%m-%d %H:%M": local_time(v, tz, fmt)
    env.filters["iso"] = iso
    env.filters["detail"] = lambda d, skip=(), keys=False: detail_text(d, tz, tuple(skip), keys)
    env.filters["relative"] = relative
    env.filters["hours"] = hours
    env.filters["percent"] = percent
    env.filters["humanize"] = humanize
    env.globals["tz"] = tz
    return env
