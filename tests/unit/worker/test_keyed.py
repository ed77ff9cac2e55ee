"""KeyedStore: a forgotten key is gone from the table and its old deadline is skipped."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from waybill_watch.worker.keyed import KeyedStore, PartitionClock

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=SH)


def test_forget_deletes_the_state_and_leaves_its_deadline_stale() -> None:
    states: dict[bytes, bytes] = {}
    deadlines: dict[bytes, bytes] = {}
    store = KeyedStore(states, deadlines, PartitionClock("stream", deadlines, "Asia/Shanghai"))
    store.save("YT1", b"state-1", T0 + timedelta(hours=1), T0, 0)
    store.save("YT2", b"state-2", T0 + timedelta(hours=1), T0, 0)

    store.forget("YT1")
    store.forget("YT1")  # forgetting twice is harmless

    assert store.load("YT1") is None and b"YT1" not in states
    entries, ready = store.due(0, T0 + timedelta(hours=2))
    assert sorted(key for key, _ in entries) == ["YT1", "YT2"]  # the index still lists both
    assert ready == [("YT2", b"state-2")]  # but only the live key fires
