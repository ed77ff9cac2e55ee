"""Per-source token buckets for the HTTP ingest (429 with ``Retry-After``), in bounded memory.

One bucket per key (the ingest uses ``(feed, client address)``), refilled at ``rate`` tokens a
second up to ``burst``. Buckets live in an LRU of at most ``max_keys`` entries: a flood of
distinct addresses evicts the least recently seen ones (an evicted source starts again with a
full bucket, which only ever errs on the side of admitting), so memory never grows with the
number of sources. Single-threaded (one event loop); no locks.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

#: Addresses (or networks) as ``ipaddress`` objects.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    """Token buckets keyed by anything hashable, least recently used evicted first."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1 required")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        # key -> [tokens, last refill time]
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: Hashable) -> float:
        """Take one token for ``key``: 0.0 when admitted, else the seconds until one is due."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.rate


def retry_after_header(wait: float) -> str:
    """``Retry-After`` in whole seconds (at least 1)."""
    return str(max(1, math.ceil(wait)))


def parse_networks(text: str) -> tuple[Network, ...]:
    """``WAYBILL_WATCH_TRUSTED_PROXIES``: comma-separated addresses or CIDR networks."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The address a request counts against.

    The TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` (every header
    line, comma-separated hops) is walked from the right and the first hop that is not a
    trusted proxy is the client (a client cannot forge the hops its proxies appended). An
    unparsable hop ends the walk there (that text, shortened, is the key)."""
    address = peer or "unknown"
    if not trusted or not _is_trusted(address, trusted):
        return address
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop[:64]
        address = hop
    return address


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
