"""Backoff with full jitter, Retry-After, and the token bucket's guarantee."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from waybill_watch.notify.ratelimit import TokenBucket
from waybill_watch.notify.retry import backoff, parse_retry_after, retry_delay
from waybill_watch.notify.rules import DEFAULT_RATES


def test_full_jitter_stays_under_the_growing_ceiling() -> None:
    rand = random.Random(7)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        samples = [backoff(attempt, 2.0, 60.0, rand) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole range


def test_retry_after_is_a_floor() -> None:
    rand = random.Random(1)
    assert all(retry_delay(1, 1.0, 60.0, 30.0, rand) >= 30.0 for _ in range(50))
    assert retry_delay(1, 1.0, 60.0, 10**9, rand) == 3600.0  # a broken header is capped


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_token_bucket_never_exceeds_the_documented_window() -> None:
    for kind, limit, window in [("dingtalk", 20, 60.0), ("wecom", 20, 60.0), ("feishu", 5, 1.0)]:
        rate = DEFAULT_RATES[kind]
        assert rate is not None
        clock = [0.0]
        bucket = TokenBucket(rate[0], rate[1], clock=lambda c=clock: c[0])  # type: ignore[misc]
        sent: list[float] = []
        for _ in range(20_000):  # a greedy sender polling every 10 ms for 200 s
            while bucket.take():
                sent.append(clock[0])
            clock[0] += 0.01
        worst = max(sum(1 for t in sent if start <= t < start + window) for start in sent)
        assert worst <= limit, (kind, worst)
    feishu = DEFAULT_RATES["feishu"]
    assert feishu is not None and feishu[1] + feishu[0] <= 100  # and 100 a minute
