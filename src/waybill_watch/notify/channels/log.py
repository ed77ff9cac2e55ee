"""The process log (and optionally a file): where notifications go when no receiver is set
up, e.g. in the demo. Never fails a message except when the file cannot be written."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch, plain_text
from waybill_watch.notify.rules import LogChannel

log = logging.getLogger("waybill_watch.notify.log_channel")


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text + "\n\n")


class LogSender:
    """Logs the plain-text message at INFO (``notify[channel] ...``)."""

    def __init__(self, name: str, config: LogChannel) -> None:
        self.name = name
        self.config = config

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        text = plain_text(batch)
        log.info("notify[%s] %s", self.name, text)
        if self.config.file is not None:
            try:
                await asyncio.to_thread(_append, self.config.file, text)
            except OSError as exc:
                return Outcome("retry", "file", f"{self.config.file}: {exc.strerror}")
        return Outcome("delivered", "ok")
