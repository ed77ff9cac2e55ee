"""DingTalk (钉钉) custom robot: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``.

With 加签 the URL gets ``&timestamp=<ms>&sign=<sign>`` (``signing.dingtalk_sign``), computed
per try: DingTalk refuses a timestamp more than an hour off. 20 messages a minute per robot;
beyond, errcode 130101 and the robot is throttled for 10 minutes, so 130101 parks the channel
for 600 s. 310000 (bad signature, missing keyword, clock skew) and 300001 (unknown token)
cannot be fixed by retrying.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiohttp

from waybill_watch import jsonio
from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.channels.http import Reply, post, robot_reply
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch, markdown
from waybill_watch.notify.rules import DingTalkChannel
from waybill_watch.notify.signing import DELIVERY_HEADER, dingtalk_url

#: DingTalk publishes no byte limit for markdown; 18 000 bytes stays well inside the 20 KB
#: request bodies its robots are reported to take.
LIMIT_BYTES = 18000


def body(batch: Batch, keyword: str | None = None) -> bytes:
    """The robot's markdown message (``keyword``: the robot's security keyword, if any)."""
    title = f"{keyword} {batch.title}" if keyword else batch.title
    text = markdown(batch, limit_bytes=LIMIT_BYTES, keyword=keyword)
    return jsonio.dumps({"msgtype": "markdown", "markdown": {"title": title, "text": text}})


class DingTalkSender:
    """POSTs markdown to the (signed) robot URL."""

    def __init__(self, name: str, config: DingTalkChannel, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        url = dingtalk_url(self.config.url.get_secret_value(), secret, int(time.time() * 1000))
        reply = await post(
            self.session,
            url,
            body(batch, self.config.keyword),
            {"Content-Type": "application/json", DELIVERY_HEADER: batch.delivery_id},
            self.config.timeout.total_seconds(),
        )
        if isinstance(reply, Reply):
            return robot_reply(reply, ok={0}, throttle={130101: 600.0}, retry={-1})
        return reply
