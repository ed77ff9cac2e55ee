"""The worker's stages, wired in-process (no broker), give exactly replay's anomaly events
whatever the interleaving of partitions (contract §6: decide as if it had kept up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings
from waybill_watch.timefmt import parse_rfc3339

from .pipeline import Pipeline

Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """~6,000 envelopes: 520 waybills, every anomaly type, busy couriers (feed_silence)."""
    out: Path = tmp_path_factory.mktemp("capture") / "capture.jsonl"
    command = [sys.executable, "-m", "waybill_watch", "simulate", "--waybills", "520"]
    subprocess.run([*command, "--seed", "23", "--out", str(out)], check=True, capture_output=True)
    return [line for line in out.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def replayed(capture: list[bytes]) -> set[Key]:
    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    replay.run(capture)
    keys = {(e.anomaly_id, e.type, e.status) for e in replay.anomalies}
    assert {"feed_silence", "bulk_signing", "site_stall_spike"} <= {k[1] for k in keys}
    return keys


@pytest.mark.parametrize(
    ("partitions", "seed", "chunk", "tick_every"),
    [(4, 1, 50, 100), (8, 4, 300, 10), (4, 3, 2000, 1000)],
)
def test_stages_equal_replay_under_any_interleaving(
    capture: list[bytes],
    replayed: set[Key],
    partitions: int,
    seed: int,
    chunk: int,
    tick_every: int,
) -> None:
    pipeline = Pipeline(partitions=partitions, seed=seed, chunk=chunk)
    pipeline.raw(capture, tick_every)
    last = max(parse_rfc3339(orjson.loads(line)["received_at"]) for line in capture)
    pipeline.tick("raw/0", to_ms(last), True)  # caught up: the stream clock's last mark
    pipeline.drain()
    live = {
        (doc["anomaly_id"], doc["type"], doc["status"])
        for doc in map(orjson.loads, pipeline.out[pipeline.names.anomalies])
    }
    assert live - replayed == set()
    assert replayed - live == set()


def test_a_partition_waits_for_every_source_before_its_clock_moves() -> None:
    pipeline = Pipeline(partitions=2)
    from waybill_watch.worker import codec

    signals, tx = pipeline.names.signals, pipeline.stores[pipeline.names.signals][0]
    pipeline.aggregates.handle(tx, 0, codec.encode_tick({"w/0": (1_000_000, False)}))
    assert tx.get_bytes(b"wm", b"c") is not None
    assert orjson.loads(tx.get_bytes(b"wm", b"c") or b"{}")["now"] == 0  # w/1 not heard yet
    pipeline.aggregates.handle(tx, 0, codec.encode_tick({"w/1": (2_000_000, False)}))
    assert orjson.loads(tx.get_bytes(b"wm", b"c") or b"{}")["now"] == 1_000_000
    assert signals in pipeline.logs
