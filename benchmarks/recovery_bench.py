"""State recovery: a worker whose data volume is lost rebuilds its RocksDB state from the
changelog topics. How long per million waybills, against a bare read of the same topics.

One worker processes the simulated capture (10,000 waybills, ``--quick``: 2,000) until its
group has caught up, answers a 1,000-waybill query, and stops (SIGTERM). Its data directory is
deleted, as when a StatefulSet's volume is lost or a pod lands on a new node, and a new worker
starts on the empty directory. Timed from that spawn to quix-streams' "Recovery process
complete" log line; then the same query must give the same answer. The floor: a bare aiokafka
consumer (read_committed) reading every changelog partition from the start to its end, in the
same run. Per million waybills is the measured time scaled linearly by waybills (changelog
records per waybill stay the same as the capture's: every state update is one record until
compaction removes older ones).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from benchmarks.engines_bench import _reap
from benchmarks.kafka_capture import bench_kafka, preload, read_capture
from benchmarks.live_bench import PARTITIONS, Worker, _caught_up, _consumed, _spawn
from benchmarks.query_bench import _rss
from benchmarks.replay_bench import ROOT, _capture
from waybill_watch.tokens import token_digest

TOKEN = "bench-recovery-viewer"  # noqa: S105 (a throw-away token of this run)
BEGUN = "Beginning recovery check"
RECOVERED = "Recovery process complete"
SAMPLE = 1_000
#: A waybill number in a merchant record's body (a JSON string inside the envelope's JSON).
_WAYBILL = re.compile(rb'\\"waybill\\":\\"([A-Za-z0-9]+)\\"')


def _stop(worker: Worker) -> None:
    if worker.proc.returncode is None and worker.proc.poll() is None:
        worker.proc.send_signal(signal.SIGTERM)
        _reap(worker.proc)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _wait_http(worker: Worker, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("worker did not serve /healthz")


def _query(worker: Worker, waybills: list[str]) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}/api/waybills/query",
        data=json.dumps({"waybills": waybills}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        results: dict[str, object] = json.loads(response.read())["results"]
    return results


def _wait_log(worker: Worker, text: str, timeout: float = 1800) -> float:
    """``time.time()`` when ``text`` first appears in the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log.read_text(errors='replace')[-3000:]}")
        if text in worker.log.read_text(errors="replace"):
            return time.time()
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not logged in {timeout:.0f} s")


async def _changelogs(bootstrap: str, group: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith("changelog__") and group in t]
        return [
            TopicPartition(meta["topic"], p["partition"])
            for meta in await admin.describe_topics(names)
            for p in meta["partitions"]
        ]
    finally:
        await admin.close()


async def _bare_read(bootstrap: str, tps: list[TopicPartition]) -> tuple[float, int, int]:
    """Seconds to read every record of ``tps`` from the start (read_committed), records, bytes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        started = time.perf_counter()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        records = size = 0
        while left:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batch.values():
                records += len(messages)
                size += sum(len(m.value or b"") + len(m.key or b"") for m in messages)
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return time.perf_counter() - started, records, size
    finally:
        await consumer.stop()


def main(quick: bool = False) -> int:
    waybills = 2_000 if quick else 10_000
    command = ".venv/bin/python -m benchmarks recovery" + (" --quick" if quick else "")
    capture = _capture(waybills)
    envelopes = read_capture(capture.path)
    print(
        f"{len(envelopes):,} envelopes of {capture.path.relative_to(ROOT)} ({capture.note}); "
        f"{PARTITIONS} partitions; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    bootstrap, broker = bench_kafka()
    try:
        prefix = f"recovery{uuid.uuid4().hex[:8]}."
        group = f"{prefix}waybill-watch"
        asyncio.run(preload(bootstrap, f"{prefix}tracking.raw", envelopes, partitions=PARTITIONS))
        with tempfile.TemporaryDirectory(prefix="wbw-recovery-") as tmp:
            workdir = Path(tmp)
            tokens = workdir / "tokens.json"
            tokens.write_text(json.dumps({token_digest(TOKEN): {"role": "viewer"}}))
            env = {
                "WAYBILL_WATCH_API_TOKENS_FILE": str(tokens),
                "WAYBILL_WATCH_LOG_LEVEL": "info",
            }
            first = _spawn(bootstrap, prefix, workdir, "w", **env)
            try:
                _wait_http(first)

                def check() -> None:
                    if first.proc.poll() is not None:
                        raise RuntimeError(first.log.read_text(errors="replace")[-3000:])

                started = time.time()
                asyncio.run(_caught_up(bootstrap, group, _consumed(prefix), check, 5))
                print(f"  processed in {time.time() - started:.1f} s", flush=True)
                sample = _sample_waybills(envelopes)
                before = _query(first, sample)
                rss_first = _rss(first.proc.pid)
            finally:
                _stop(first)
            data = workdir / "w"
            kept = _dir_bytes(data)
            shutil.rmtree(data)
            tps = asyncio.run(_changelogs(bootstrap, group))
            bare_s, records, size = asyncio.run(_bare_read(bootstrap, tps))
            second = _spawn(bootstrap, prefix, workdir, "w", **env)
            spawned = time.time()
            try:
                begun = _wait_log(second, BEGUN)
                recovered = _wait_log(second, RECOVERED)
                _wait_http(second)
                after = _query(second, sample)
                rebuilt = _dir_bytes(data)
                rss_second = _rss(second.proc.pid)
            finally:
                _stop(second)
    finally:
        if broker is not None:
            broker.stop()
    same = before == after
    known = sum(1 for v in before.values() if v is not None)
    took = recovered - spawned
    restore = recovered - begun
    per_million = restore * 1_000_000 / waybills
    print(f"\n### State recovery from the changelog (`{command}`)\n")
    print(
        "| waybills | changelog records (MiB) | bare read s | worker spawn → recovered s "
        "| of it restoring s | restoring / bare | restoring s per million waybills "
        "| data dir before / rebuilt MiB "
        "| RSS MiB after processing / after recovery (peak) | 1,000-waybill answer same |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(
        f"| {waybills:,} | {records:,} ({size / 2**20:.1f}) | {bare_s:.2f} | {took:.1f} "
        f"| {restore:.1f} | {restore / bare_s:.1f} | {per_million:,.0f} | {kept / 2**20:.1f} / "
        f"{rebuilt / 2**20:.1f} | {rss_first[0] / 2**20:.0f} ({rss_first[1] / 2**20:.0f}) / "
        f"{rss_second[0] / 2**20:.0f} ({rss_second[1] / 2**20:.0f}) "
        f"| {'yes' if same else 'NO'} ({known} known) |"
    )
    print(
        f"\nRestoring: from quix-streams' {BEGUN!r} to {RECOVERED!r} log lines; spawn → "
        f"recovered adds the process start and the group join. Data dir: the stopped worker's, "
        f"and the new one's while running (memtables and write-ahead log not yet compacted). "
        f"{len(tps)} changelog partitions. "
        f"Load at the end {os.getloadavg()[0]:.2f}."
    )
    return 0 if same and known else 1


def _sample_waybills(envelopes: list[bytes]) -> list[str]:
    """Up to SAMPLE waybill numbers named by the capture's merchant records (every simulated
    waybill is shipped by one)."""
    found: dict[str, None] = {}
    for raw in envelopes:
        for match in _WAYBILL.finditer(raw):
            found.setdefault(match.group(1).decode(), None)
            if len(found) >= SAMPLE:
                return list(found)
    return list(found)
