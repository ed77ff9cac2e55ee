"""The channel interface and what one attempt comes to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import Batch
from waybill_watch.notify.rules import ChannelBase

Result = Literal["delivered", "retry", "throttled", "failed"]


@dataclass(frozen=True)
class Outcome:
    """One attempt's result.

    ``delivered``: the receiver acknowledged. ``retry``: worth another try (5xx, timeout,
    connection). ``throttled``: the receiver asked us to slow down; the whole channel waits
    ``retry_after``. ``failed``: another try cannot help (a bad signature, a 4xx): the message
    goes to the DLQ now. ``code`` is a short, bounded label (metrics, DLQ reason)."""

    result: Result
    code: str
    detail: str = ""
    retry_after: float | None = None


class Channel(Protocol):
    """Sends one batch (a message, or a digest) and says how it went; never raises for a
    receiver's failure."""

    @property
    def name(self) -> str:
        """The channel's name in the rules file."""
        ...

    @property
    def config(self) -> ChannelBase:
        """Its rules-file entry (retries, timeout, rate)."""
        ...

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        """One attempt."""
        ...
