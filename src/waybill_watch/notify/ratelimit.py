"""A token bucket per channel: the client-side side of each platform's documented rate
limit (``rules.DEFAULT_RATES``), so the notifier stays under it instead of being throttled
(DingTalk parks a robot that exceeds 20/min for 10 minutes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``burst`` tokens, refilled at ``per_minute`` / 60 a second; one token per message."""

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self) -> int:
        """Whole tokens now."""
        self._refill()
        return int(self.tokens)

    def wait_time(self) -> float:
        """Seconds until one token is there (0 if it is)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> bool:
        """Take a token if there is one."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a token and take it."""
        while True:
            if self.take():
                return
            await asyncio.sleep(self.wait_time())
