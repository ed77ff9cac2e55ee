"""WeCom (企业微信) group robot: ``{"msgtype": "markdown", "markdown": {"content"}}``.

Content at most 4 096 bytes (errcode 40058 beyond): a digest drops whole notices to fit and
says how many. 20 messages a minute per robot. Success is ``errcode`` 0; 45009 (frequency
limit) parks the channel for a minute; -1 (system busy) is retried. The robot has no
signature: its key, in the URL, is the credential.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from waybill_watch import jsonio
from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.channels.http import Reply, post, robot_reply
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch, markdown
from waybill_watch.notify.rules import WeComChannel
from waybill_watch.notify.signing import DELIVERY_HEADER

LIMIT_BYTES = 4096


def body(batch: Batch) -> bytes:
    """The robot's markdown message."""
    content = markdown(batch, limit_bytes=LIMIT_BYTES)
    return jsonio.dumps({"msgtype": "markdown", "markdown": {"content": content}})


class WeComSender:
    """POSTs markdown to the robot URL."""

    def __init__(self, name: str, config: WeComChannel, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        reply = await post(
            self.session,
            self.config.url.get_secret_value(),
            body(batch),
            {"Content-Type": "application/json", DELIVERY_HEADER: batch.delivery_id},
            self.config.timeout.total_seconds(),
        )
        if isinstance(reply, Reply):
            return robot_reply(reply, ok={0}, throttle={45009: 60.0}, retry={-1})
        return reply
