"""The worker's stages, wired in-process (no broker), give exactly replay's anomaly events
whatever the interleaving of partitions (contract §6: decide as if it had kept up)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
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
def replay(capture: list[bytes]) -> Replay:
    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    replay.run(capture)
    return replay


@pytest.fixture(scope="module")
def replayed(replay: Replay) -> set[Key]:
    keys = {(e.anomaly_id, e.type, e.status) for e in replay.anomalies}
    assert {"feed_silence", "bulk_signing", "site_stall_spike"} <= {k[1] for k in keys}
    return keys


@pytest.mark.parametrize(
    ("partitions", "seed", "chunk", "tick_every"),
    [(4, 1, 50, 100), (8, 4, 300, 10), (4, 3, 2000, 1000)],
)
def test_stages_equal_replay_under_any_interleaving(
    capture: list[bytes],
    replay: Replay,
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
    # Kdniao updates cross the updates topic unbuilt; the waybill stage builds only new scans:
    # each is forwarded once, as replay counts them, and none is lost.
    forwarded = [orjson.loads(v)["event_id"] for v in pipeline.out[pipeline.names.events]]
    assert len(forwarded) == len(set(forwarded)) == replay.stats.new_scans
    assert pipeline.out[pipeline.names.dlq] == []


def test_an_update_whose_draft_cannot_be_built_goes_to_the_dlq(capture: list[bytes]) -> None:
    """A feed bug in building a scan costs that waybill's update (dead-lettered with its
    reason), never the stream: the other waybills' updates are applied."""
    pipeline = Pipeline(partitions=1)
    pipeline.raw(capture[:40])
    (log,) = pipeline.logs[pipeline.names.updates]
    broken = None
    updates_of = Counter(orjson.loads(value).get("waybill") for _, value, _ in log)
    for position, (key, value, headers) in enumerate(log):
        doc = orjson.loads(value)
        if doc.get("entries") and updates_of[doc["waybill"]] == 1:  # its only update
            doc["entries"][0][1] = "not a time"  # the draft's AcceptTime
            log[position] = (key, orjson.dumps(doc), headers)
            broken = doc["waybill"]
            break
    assert broken is not None
    pipeline.drain()
    (dead,) = [orjson.loads(v) for v in pipeline.out[pipeline.names.dlq]]
    assert dead["reason"] == "parser_error"
    assert dead["source_topic"] == pipeline.names.updates
    assert dead["key"] == broken
    assert "scan builder failed" in dead["error"]
    forwarded = {orjson.loads(v)["waybill"] for v in pipeline.out[pipeline.names.events]}
    assert broken not in forwarded
    assert len(forwarded) > 1


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
