"""Read the committed per-waybill states of this worker's partitions from another thread.

The waybill stage's RocksDB holds what the last checkpoint committed (every 0.1 s under
exactly-once, 1 s at-least-once): the query API reads it directly, so an answer is at most one
checkpoint behind the stream. quix-streams has no interactive-query API; this uses the state
manager's store partitions (pinned with the version, like the other internals in ``app.py``).
A partition that is not assigned here, or still being restored, reads as ``NOT_HERE``.
"""

from __future__ import annotations

from typing import Any, Final

from quixstreams.state.metadata import SEPARATOR

from waybill_watch.domain.state import WaybillState
from waybill_watch.worker.ports import STATE_PREFIX, split_state_value


class _NotHere:
    def __repr__(self) -> str:
        return "NOT_HERE"


NOT_HERE: Final = _NotHere()


class LocalStates:
    """The waybill states in this worker's assigned partitions."""

    def __init__(self, app: Any, stream_id: str) -> None:
        self.bind(app, stream_id)

    def bind(self, app: Any, stream_id: str) -> None:
        """Read ``app``'s stores from now on (the worker rebuilt its engine)."""
        self._manager = app._state_manager
        self._stream_id = stream_id

    def read(self, partition: int, waybill: str) -> WaybillState | _NotHere | None:
        """The state, ``None`` when this partition has never seen the waybill, or
        ``NOT_HERE`` when the partition is not (yet, or no longer) served here."""
        try:
            if self._manager.recovery_required:
                return NOT_HERE
            store = self._manager.get_store(self._stream_id)
            store_partition = store.partitions.get(partition)
            if store_partition is None:
                return NOT_HERE
            raw = store_partition.get(STATE_PREFIX + SEPARATOR + waybill.encode())
        except Exception:  # closed under us by a rebalance: the new owner answers
            return NOT_HERE
        if not isinstance(raw, bytes):
            return None  # quix's "undefined" marker: no such key
        _, payload = split_state_value(raw)
        return WaybillState.from_bytes(payload)
