"""When to try a failed message again: exponential backoff with full jitter, and the
receiver's ``Retry-After`` when it gives one (reference notify-and-cases.md §3).

Full jitter (``uniform(0, min(cap, base * 2**n))``) spreads the retries of many messages that
failed together (a receiver that was down) instead of sending them back in one wave; a
``Retry-After`` is a floor, since the receiver said when it can take more.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: A Retry-After longer than this is treated as this (a broken header must not park a
#: channel for days).
MAX_RETRY_AFTER_S = 3600.0


def backoff(attempt: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rand or random).uniform(0.0, ceiling)


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    rand: random.Random | None = None,
) -> float:
    """``max(Retry-After, jittered backoff)``: never sooner than the receiver asked."""
    delay = backoff(attempt, base, cap, rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
