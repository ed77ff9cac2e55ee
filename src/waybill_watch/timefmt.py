"""Time parsing and formatting shared by feeds, the core and the wire format.

Every timestamp on the wire is RFC 3339 with an explicit offset (contract §1). Couriers that
send naive local times are read in a configured zone; impossible dates are rejected, never
guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"


class TimeParseError(ValueError):
    """A provider time that cannot be read as a real instant."""


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """Cached ZoneInfo lookup (zone objects are immutable)."""
    return ZoneInfo(name)


def parse_local(text: str, tz: str = DEFAULT_ZONE) -> datetime:
    """Read a naive provider time (``yyyy-MM-dd HH:mm:ss`` or ISO) in zone ``tz``.

    An explicit offset in the text wins over ``tz``.
    """
    raw = text.strip()
    if not raw:
        raise TimeParseError("empty time")
    try:
        value = datetime.fromisoformat(raw.replace("/", "-"))
    except ValueError as exc:
        raise TimeParseError(f"not a valid date/time: {raw!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return value


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; an offset is required."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise TimeParseError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if value.tzinfo is None:
        raise TimeParseError(f"timestamp has no offset: {text!r}")
    return value


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 with millisecond precision and its offset."""
    if value.tzinfo is None:
        raise TimeParseError("refusing to format a naive datetime")
    return value.isoformat(timespec="milliseconds")


def from_epoch(seconds: float, tz: str = DEFAULT_ZONE) -> datetime:
    """An epoch instant shown in zone ``tz``."""
    return datetime.fromtimestamp(seconds, tz=zone(tz))


def utc_now() -> datetime:
    """The wall clock. Only adapters call this; the core receives ``now`` as an argument."""
    return datetime.now(tz=UTC)


def local_now(tz: str = DEFAULT_ZONE) -> datetime:
    """The wall clock shown in ``tz`` (what ingest stamps as ``received_at``)."""
    return datetime.now(tz=zone(tz))


HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
