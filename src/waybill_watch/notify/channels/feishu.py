"""Feishu/Lark (飞书) custom bot: an interactive card (header coloured by severity, markdown
body with the case link).

With 签名校验 the body carries ``timestamp`` (seconds, as a string) and ``sign``
(``signing.feishu_sign``), computed per try. Limits: 5 a second and 100 a minute per bot,
bodies up to 20 KB. Success is ``code`` 0 (``StatusCode`` 0 from older bots); 11232
(frequency limited) parks the channel for a minute; 19021 (signature or timestamp), 19022
(IP), 19024 (keyword), 19001 (bad token) and 9499 (bad request) are not retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from waybill_watch import jsonio
from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.channels.http import Reply, post, robot_reply
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch, markdown
from waybill_watch.notify.rules import FeishuChannel
from waybill_watch.notify.signing import DELIVERY_HEADER, feishu_sign

LIMIT_BYTES = 18000
COLOURS = {"critical": "red", "high": "orange", "warning": "yellow", "info": "blue"}


def body(batch: Batch, secret: str | None, timestamp: int, keyword: str | None = None) -> bytes:
    """The card message, signed when the bot has a secret."""
    title = f"{keyword} {batch.title}" if keyword else batch.title
    content = markdown(batch, limit_bytes=LIMIT_BYTES, quote="", heading=False)
    payload: dict[str, Any] = {}
    if secret:
        payload["timestamp"] = str(timestamp)
        payload["sign"] = feishu_sign(secret, timestamp)
    payload["msg_type"] = "interactive"
    payload["card"] = {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": title},
            "template": COLOURS.get(batch.severity, "blue"),
        },
        "elements": [{"tag": "markdown", "content": content}],
    }
    return jsonio.dumps(payload)


class FeishuSender:
    """POSTs a card to the bot URL."""

    def __init__(self, name: str, config: FeishuChannel, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        data = body(batch, secret, int(time.time()), self.config.keyword)
        reply = await post(
            self.session,
            self.config.url.get_secret_value(),
            data,
            {"Content-Type": "application/json", DELIVERY_HEADER: batch.delivery_id},
            self.config.timeout.total_seconds(),
        )
        if isinstance(reply, Reply):
            return robot_reply(reply, ok={0}, throttle={11232: 60.0}, retry={-1})
        return reply
