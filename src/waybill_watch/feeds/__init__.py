"""Feed adapters, one per contract feed name (§3), and the registry that builds them.

``build_feeds(settings)`` gives the HTTP ingest and the normaliser one configured adapter per
feed; ``build_feed(name, config)`` is the same for one feed (replay, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from waybill_watch.feeds.aftership import AfterShipFeed
from waybill_watch.feeds.base import Feed, FeedConfig
from waybill_watch.feeds.canonical import CanonicalFeed
from waybill_watch.feeds.kdniao import KdniaoFeed
from waybill_watch.feeds.kuaidi100 import Kuaidi100Feed
from waybill_watch.feeds.merchant import MerchantFeed
from waybill_watch.feeds.track17 import Track17Feed

if TYPE_CHECKING:
    from waybill_watch.settings import Settings

FeedFactory = Callable[[FeedConfig], Feed]

#: Feed name (contract §3) → adapter class (constructed with its FeedConfig).
FEEDS: dict[str, FeedFactory] = {
    "kdniao": KdniaoFeed,
    "kuaidi100": Kuaidi100Feed,
    "17track": Track17Feed,
    "aftership": AfterShipFeed,
    "canonical": CanonicalFeed,
    "merchant": MerchantFeed,
}


def feed_config(settings: Settings, name: str) -> FeedConfig:
    """The configuration of feed ``name`` taken from the one Settings object."""
    return FeedConfig(
        secret=settings.secret_for(name),
        timezone=settings.feed_timezone(name),
        allow_unsigned=settings.allow_unsigned,
        ebusiness_id=settings.kdniao_ebusiness_id if name == "kdniao" else "",
        signature_tolerance_seconds=settings.signature_tolerance_seconds,
        require_signed_timestamp=settings.require_signed_timestamp,
    )


def build_feed(name: str, config: FeedConfig | None = None) -> Feed:
    """One adapter; ``ValueError`` for a name that is not a contract feed."""
    factory = FEEDS.get(name)
    if factory is None:
        raise ValueError(f"unknown feed {name!r}; known: {', '.join(FEEDS)}")
    return factory(config if config is not None else FeedConfig())


def build_feeds(settings: Settings) -> dict[str, Feed]:
    """Every adapter, configured from ``settings``."""
    return {name: factory(feed_config(settings, name)) for name, factory in FEEDS.items()}


__all__ = [
    "FEEDS",
    "AfterShipFeed",
    "CanonicalFeed",
    "Feed",
    "FeedConfig",
    "FeedFactory",
    "KdniaoFeed",
    "Kuaidi100Feed",
    "MerchantFeed",
    "Track17Feed",
    "build_feed",
    "build_feeds",
    "feed_config",
]
