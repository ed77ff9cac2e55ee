"""The feed registry: one adapter per contract feed name, configured from Settings."""

from __future__ import annotations

import pytest

from waybill_watch.feeds import FEEDS, build_feed, build_feeds, feed_config
from waybill_watch.feeds.base import FeedConfig
from waybill_watch.models.envelope import FEED_NAMES
from waybill_watch.settings import Settings


def test_every_contract_feed_has_an_adapter() -> None:
    assert set(FEEDS) == set(FEED_NAMES)
    for name in FEED_NAMES:
        feed = build_feed(name)
        assert feed.name == name
        assert feed.config == FeedConfig()


def test_feed_config_from_settings() -> None:
    settings = Settings(
        kdniao_app_key="kd-key",
        track17_key="t-key",
        allow_unsigned=True,
        feed_timezones={"aftership": "UTC"},
        kdniao_ebusiness_id="1000001",
    )
    kd = feed_config(settings, "kdniao")
    assert (kd.secret, kd.timezone, kd.allow_unsigned, kd.ebusiness_id) == (
        "kd-key",
        "Asia/Shanghai",
        True,
        "1000001",
    )
    assert feed_config(settings, "17track").secret == "t-key"
    assert feed_config(settings, "aftership").timezone == "UTC"
    assert feed_config(settings, "kuaidi100").secret is None
    feeds = build_feeds(settings)
    assert set(feeds) == set(FEED_NAMES)
    assert feeds["kdniao"].config == kd


def test_unknown_feed_and_bad_zone_fail_early() -> None:
    with pytest.raises(ValueError, match="unknown feed"):
        build_feed("cainiao")
    with pytest.raises(Exception, match="Mars"):
        build_feed("kdniao", FeedConfig(timezone="Mars/Olympus"))
