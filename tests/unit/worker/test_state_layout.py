"""Waybill and aggregate state in a real quix-streams RocksDB partition survive the TTL
migration bookkeeping an interrupted changelog restore leaves behind.

Found by the cluster kill loop (tests/integration/test_kill_loop_cluster.py): after a restart
with wiped RocksDB files and then a SIGKILL, every store opened "carrying interrupted legacy-TTL
migration bookkeeping (__ttl_backfill_pending__)", and the worker stopped with
``StateMigrationError`` reading a waybill whose due time was ahead of the wall clock. The state
values began with an 8-byte big-endian epoch-ms, quix-streams' TTL stamp layout; when every
sampled value looks like that, quix instead flips the store into TTL mode and strips the first
eight bytes of every value it returns.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from quixstreams.state.metadata import TTL_BACKFILL_PENDING_CF_NAME
from quixstreams.state.rocksdb.partition import RocksDBStorePartition

from waybill_watch.worker.ports import STATE_PREFIX, TransactionStore

from .pipeline import DictTransaction as DictTx

DAY_MS = 86_400_000


def _store(tx: object) -> TransactionStore[bytes]:
    return TransactionStore(tx, bytes, bytes)  # type: ignore[arg-type]


def _reopen_with_leftover_bookkeeping(
    path: Path, states: dict[str, tuple[int | None, bytes]]
) -> RocksDBStorePartition:
    """Write ``states`` as the worker does, leave what an interrupted restore leaves, reopen."""
    partition = RocksDBStorePartition(str(path))
    partition.get_or_create_column_family(TTL_BACKFILL_PENDING_CF_NAME)
    tx = partition.begin()
    for key, (due, state) in states.items():
        _store(tx).save(key, due, state)
    tx.prepare()
    tx.flush()
    partition.close()
    return RocksDBStorePartition(str(path))


@pytest.mark.parametrize(
    "dues",
    [
        pytest.param((5, 6), id="every-due-ahead"),  # quix would flip the store to TTL mode
        pytest.param((5, None), id="one-without-due"),  # quix would refuse the read
    ],
)
def test_state_reads_back_intact(tmp_path: Path, dues: tuple[int | None, ...]) -> None:
    now = int(time.time() * 1000)
    states = {
        f"YT{i}": (None if days is None else now + days * DAY_MS, f'[1,"YT{i}"]'.encode())
        for i, days in enumerate(dues)
    }
    partition = _reopen_with_leftover_bookkeeping(tmp_path / "p0", states)
    try:
        assert not partition.uses_ttl_stamps, "the store must stay a plain (legacy) store"
        tx = partition.begin()
        for key, expected in states.items():
            assert _store(tx).load(key) == expected
    finally:
        partition.close()


@pytest.mark.parametrize("due", [1_796_612_336_074, None])
def test_values_written_before_the_layout_tag_still_load(due: int | None) -> None:
    tx = DictTx()
    packed = struct.pack(">q", -(2**63) if due is None else due)
    tx.set_bytes(b"YT1", packed + b'[1,"YT1"]', STATE_PREFIX)
    assert _store(tx).load("YT1") == (due, b'[1,"YT1"]')


def test_no_value_starts_like_a_ttl_stamp() -> None:
    tx = DictTx()
    _store(tx).save("YT1", int(time.time() * 1000) + DAY_MS, b"[]")
    (value,) = tx.data.values()
    (first8,) = struct.unpack_from(">Q", value)
    assert first8 >= 2**56  # quix reads nothing at or above 10**15 ms as a stamp
