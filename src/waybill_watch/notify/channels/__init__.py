"""One module per channel type, all with the same small interface (``base.Channel``):
``send(batch, notices) -> Outcome``. ``build_channel`` makes one from its rules-file entry."""

from __future__ import annotations

import aiohttp

from waybill_watch.notify.channels.base import Channel, Outcome
from waybill_watch.notify.rules import ChannelBase

__all__ = ["Channel", "Outcome", "build_channel"]


def build_channel(name: str, config: ChannelBase, session: aiohttp.ClientSession) -> Channel:
    """The channel ``name`` configured by ``config`` (HTTP ones share ``session``)."""
    from waybill_watch.notify.channels import dingtalk, email, feishu, log, webhook, wecom
    from waybill_watch.notify.rules import (
        DingTalkChannel,
        EmailChannel,
        FeishuChannel,
        LogChannel,
        WebhookChannel,
        WeComChannel,
    )

    if isinstance(config, WebhookChannel):
        return webhook.WebhookSender(name, config, session)
    if isinstance(config, WeComChannel):
        return wecom.WeComSender(name, config, session)
    if isinstance(config, DingTalkChannel):
        return dingtalk.DingTalkSender(name, config, session)
    if isinstance(config, FeishuChannel):
        return feishu.FeishuSender(name, config, session)
    if isinstance(config, EmailChannel):
        return email.EmailSender(name, config)
    if isinstance(config, LogChannel):
        return log.LogSender(name, config)
    raise TypeError(f"no sender for channel type {config.type!r}")
