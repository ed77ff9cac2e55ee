"""The live worker on a real broker against the bare floor, in one run (issue 8, item 5).

The first 20 000 envelopes (``--quick``: 3 000) of the simulated Kdniao + merchant capture that
``benchmarks replay --quick`` uses (2 000 waybills, seed 7) are preloaded on a fresh 8-partition
``tracking.raw`` per contender. Rows:

* **bare**: the aiokafka loop of ``benchmarks engines`` (consume, decode envelope and body,
  produce one record, acks=all);
* **worker**: ``waybill-watch worker`` (``wall`` clock, 8 partitions), at-least-once and
  exactly-once, timed from its first normalised envelope to the moment its group has committed
  the end of every topic it consumes (raw, updates, signals, tracking.events, orders.events),
  less the few tick records of the last second (``_caught_up``);
* **two workers** in one group on the same work;
* **push → anomaly latency**: one worker (its own HTTP ingest, as ``make run`` has it). First
  its maximum rate: 32 requests in flight for ``MAX_SECONDS``, each a failed delivery of a new
  waybill that opens ``delivery_exception`` at once, counted until the last of their anomalies
  is read (what the whole path sustains, not what HTTP alone accepts while the engine falls
  behind); then pushes at half that rate, evenly spaced, for ``LATENCY_SECONDS``; the time
  from sending the request to reading the anomaly from ``anomalies`` (``read_committed``).
  Once at-least-once, once exactly-once (each at its default checkpoint interval).

Also: Kafka records written per envelope (every topic and changelog of the run), CPU seconds
per 1 000 envelopes (the worker process; the broker's separately: it shares the two cores).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from benchmarks.engines_bench import _measure, _reap, proc_cpu
from benchmarks.kafka_capture import bench_kafka, preload, read_capture
from benchmarks.replay_bench import ROOT, _capture
from waybill_watch.samples import kdniao_form

PARTITIONS = 8
CAPTURE_WAYBILLS = 2_000
CST = timezone(timedelta(hours=8))
LATENCY_SECONDS = 20
MAX_SECONDS = 8
NORMALIZED = re.compile(rb"^waybill_watch_envelopes_normalized_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def normalized(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as r:
                text = r.read()
        except OSError:
            return 0.0
        return sum(float(v) for v in NORMALIZED.findall(text))


def _spawn(bootstrap: str, prefix: str, workdir: Path, name: str, **env: str) -> Worker:
    port = _free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    full.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_PARTITIONS": str(PARTITIONS),
            "WAYBILL_WATCH_WEB_PORT": str(port),
            "WAYBILL_WATCH_DATA_DIR": str(workdir / name),
            "WAYBILL_WATCH_ALLOW_UNSIGNED": "true",
            "WAYBILL_WATCH_LOG_LEVEL": "warning",
            **env,
        }
    )
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", "worker"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=out,
        )
    return Worker(proc, port, log)


@dataclass
class Run:
    label: str
    rate: float
    seconds: float
    cpu: float  # worker processes, from first record to lag 0
    broker_cpu: float | None
    records: int  # Kafka records written by the run (all its topics)


def _consumed(prefix: str) -> list[str]:
    return [
        f"{prefix}{name}"
        for name in (
            "tracking.raw",
            "waybill-watch.updates",
            "waybill-watch.signals",
            "tracking.events",
            "orders.events",
        )
    ]


async def _records_written(bootstrap: str, prefix: str, group: str) -> int:
    """End offsets summed over the run's topics (the preloaded raw topic excluded)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        names = [
            t
            for t in await admin.list_topics()
            if (t.startswith(prefix) or group in t) and t != f"{prefix}tracking.raw"
        ]
        tps = [
            TopicPartition(meta["topic"], p["partition"])
            for meta in await admin.describe_topics(names)
            for p in meta["partitions"]
        ]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()
        await admin.close()


def _worker_run(
    label: str,
    bootstrap: str,
    envelopes: list[bytes],
    broker_pid: int | None,
    workers: int = 1,
    **env: str,
) -> Run:
    prefix = f"live{uuid.uuid4().hex[:8]}."
    group = f"{prefix}waybill-watch"
    n = len(envelopes)
    asyncio.run(preload(bootstrap, f"{prefix}tracking.raw", envelopes, partitions=PARTITIONS))
    with tempfile.TemporaryDirectory(prefix="wbw-live-") as tmp:
        workdir = Path(tmp)
        procs = [_spawn(bootstrap, prefix, workdir, f"w{i}", **env) for i in range(workers)]
        started: list[float] = []

        def check() -> None:
            for w in procs:
                if w.proc.poll() is not None:
                    tail = w.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"worker exited {w.proc.returncode}:\n{tail}")
            if not started and any(w.normalized() > 0 for w in procs):
                cpu = sum(proc_cpu(w.proc.pid) for w in procs)
                started.extend([time.time(), cpu, proc_cpu(broker_pid) if broker_pid else 0.0])

        try:
            slack = 3 * workers + 2  # ticks of the last commit interval + a commit marker
            done = asyncio.run(_caught_up(bootstrap, group, _consumed(prefix), check, slack))
            cpu_done = sum(proc_cpu(w.proc.pid) for w in procs)
            broker_done = proc_cpu(broker_pid) if broker_pid else None
        finally:
            running = [w for w in procs if w.proc.poll() is None]  # an exited one is reaped
            for w in running:
                w.proc.send_signal(signal.SIGTERM)
            for w in running:
                _reap(w.proc)
        wall, cpu, broker_start = started
        records = asyncio.run(_records_written(bootstrap, prefix, group))
        return Run(
            label,
            rate=n / (done - wall),
            seconds=done - wall,
            cpu=cpu_done - cpu,
            broker_cpu=None if broker_done is None else broker_done - broker_start,
            records=records,
        )


async def _caught_up(
    bootstrap: str, group: str, topics: list[str], check: Callable[[], None], slack: int
) -> float:
    """Like ``wait_lag_zero``, for a worker that never stops writing: its ticker sends a tick
    record per partition each second, and under exactly-once each transaction leaves a commit
    marker. The time of the first poll at which every committed offset is within ``slack`` of
    its partition's end (the envelopes' records run to thousands per partition). Only once
    every topic exists: a topic missing from the check would count as caught up (the figures
    of 2026-12-02 were taken so, and measured little more than the normaliser)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        deadline = time.monotonic() + 600
        while True:  # the worker creates its topics at start: every one must be counted
            check()
            described = await admin.describe_topics(topics)
            if all(not m["error_code"] and m["partitions"] for m in described):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {topics} were not created")
            await asyncio.sleep(0.1)
        tps = [
            TopicPartition(m["topic"], p["partition"]) for m in described for p in m["partitions"]
        ]
        while time.monotonic() < deadline:
            check()
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            if all(
                ends[tp] - max(getattr(committed.get(tp), "offset", -1), 0) <= slack for tp in tps
            ):
                return time.time()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"group {group} did not catch up")
    finally:
        await consumer.stop()
        await admin.close()


def _failed_push(waybill: str, now: datetime) -> bytes:
    trace = [
        {
            "AcceptTime": (now - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S"),
            "AcceptStation": "【杭州转运中心】快件已到达",
            "Action": "2",
        },
        {
            "AcceptTime": now.strftime("%Y-%m-%d %H:%M:%S"),
            "AcceptStation": "【杭州西湖】派送不成功，电话无人接听",
            "Action": "405",
        },
    ]
    item = {"LogisticCode": waybill, "ShipperCode": "ZTO", "State": "2", "Traces": trace}
    return kdniao_form([item], now, None)


async def _latency(bootstrap: str, **env: str) -> tuple[float, float, int, float, float, float]:
    """(max rate end to end, rate HTTP accepted in the flood, pushes, achieved rate, p50 ms,
    p99 ms) of push → anomaly."""
    import aiohttp

    prefix = f"lat{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory(prefix="wbw-live-lat-") as tmp:
        worker = _spawn(bootstrap, prefix, Path(tmp), "w0", **env)
        try:
            base = f"http://127.0.0.1:{worker.port}"
            async with aiohttp.ClientSession() as http:
                for _ in range(600):
                    try:
                        async with http.get(f"{base}/readyz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
                consumer = AIOKafkaConsumer(
                    f"{prefix}anomalies",
                    bootstrap_servers=bootstrap,
                    auto_offset_reset="latest",
                    isolation_level="read_committed",  # what a consumer under exactly-once sees
                )
                await consumer.start()
                await asyncio.sleep(8)  # the worker's group settles; the consumer is assigned
                sent: dict[str, float] = {}
                seen: dict[str, float] = {}

                async def read() -> None:
                    while True:
                        batch = await consumer.getmany(timeout_ms=100)
                        now = time.perf_counter()
                        for records in batch.values():
                            for record in records:
                                if record.key is not None:
                                    seen.setdefault(record.key.decode(), now)

                headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
                flooded: dict[str, float] = {}

                async def flood(stop: float) -> None:
                    while time.perf_counter() < stop:
                        waybill = f"ZT87{uuid.uuid4().int % 10**11:011d}"
                        body = _failed_push(waybill, datetime.now(CST).replace(microsecond=0))
                        async with http.post(
                            f"{base}/callbacks/kdniao", data=body, headers=headers
                        ) as response:
                            await response.read()
                            if response.status == 200:
                                flooded[waybill] = time.perf_counter()

                # The maximum: what the whole path (HTTP ingest and detection, one process)
                # gets through when flooded, counted to the last anomaly (the HTTP side alone
                # accepts more than the engine then keeps up with).
                reader = asyncio.create_task(read())
                began = time.perf_counter()
                await asyncio.gather(*(flood(began + MAX_SECONDS) for _ in range(32)))
                for _ in range(1200):  # at most 120 s to work off the flood
                    if len(seen.keys() & flooded.keys()) == len(flooded):
                        break
                    await asyncio.sleep(0.1)
                finished = max((seen[w] for w in flooded if w in seen), default=began + 1)
                maximum = len(flooded) / (finished - began)
                accepted = len(flooded) / MAX_SECONDS
                await asyncio.sleep(3)
                rate = maximum / 2
                interval = 1.0 / rate
                begin = time.perf_counter()
                count = 0
                in_flight: set[asyncio.Task[None]] = set()

                async def post(waybill: str) -> None:
                    body = _failed_push(waybill, datetime.now(CST).replace(microsecond=0))
                    sent[waybill] = time.perf_counter()
                    async with http.post(
                        f"{base}/callbacks/kdniao", data=body, headers=headers
                    ) as response:
                        await response.read()

                while time.perf_counter() - begin < LATENCY_SECONDS:
                    target = begin + count * interval
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    task = asyncio.create_task(post(f"ZT88{uuid.uuid4().int % 10**11:011d}"))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    count += 1
                achieved = count / (time.perf_counter() - begin)
                await asyncio.gather(*in_flight)
                for _ in range(300):  # at most 30 s for the last anomalies
                    if len(seen.keys() & sent.keys()) == len(sent):
                        break
                    await asyncio.sleep(0.1)
                reader.cancel()
                await consumer.stop()
        finally:
            worker.proc.send_signal(signal.SIGTERM)
            _reap(worker.proc)
    latencies = sorted((seen[w] - sent[w]) * 1000 for w in sent if w in seen)
    if len(latencies) < len(sent):
        print(f"  {len(sent) - len(latencies)} pushes had no anomaly within 30 s", flush=True)
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return maximum, accepted, len(sent), achieved, p50, p99


def main(quick: bool = False) -> int:
    n = 3_000 if quick else 20_000
    command = ".venv/bin/python -m benchmarks live" + (" --quick" if quick else "")
    capture = _capture(CAPTURE_WAYBILLS)
    envelopes = read_capture(capture.path)[:n]
    print(
        f"{len(envelopes)} envelopes: the first of {capture.path.relative_to(ROOT)} "
        f"({capture.note}); {PARTITIONS} partitions; {os.cpu_count()} cores shared with the "
        f"broker, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    bootstrap, broker = bench_kafka()
    pid = broker.pid if broker else None
    try:
        prefix = f"livebare{uuid.uuid4().hex[:8]}."
        source = f"{prefix}tracking.raw"
        asyncio.run(preload(bootstrap, source, envelopes, partitions=PARTITIONS))
        bare = _measure("bare", bootstrap, source, len(envelopes), prefix, pid)
        print(f"  bare: {bare.rate:,.0f}/s", flush=True)
        runs = []
        alo = {"WAYBILL_WATCH_PROCESSING_GUARANTEE": "at-least-once"}
        for label, workers, env in (
            ("worker, at-least-once", 1, alo),
            ("worker, exactly-once", 1, {"WAYBILL_WATCH_PROCESSING_GUARANTEE": "exactly-once"}),
            ("two workers, at-least-once", 2, alo),
        ):
            runs.append(_worker_run(label, bootstrap, envelopes, pid, workers, **env))
            print(f"  {label}: {runs[-1].rate:,.0f}/s", flush=True)
        latencies = [
            (label, asyncio.run(_latency(bootstrap, **env)))
            for label, env in (
                ("at-least-once", {"WAYBILL_WATCH_PROCESSING_GUARANTEE": "at-least-once"}),
                ("exactly-once", {"WAYBILL_WATCH_PROCESSING_GUARANTEE": "exactly-once"}),
            )
        ]
    finally:
        if broker is not None:
            broker.stop()
    count = len(envelopes)
    print(
        "| what | envelopes/s | ratio to bare | seconds | CPU s / 1,000 env. | broker CPU s "
        "| Kafka records / envelope |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    broker_cpu = "-" if bare.broker_cpu is None else f"{bare.broker_cpu:.1f}"
    print(
        f"| bare aiokafka loop | {bare.rate:,.0f} | 1.00 | {bare.seconds:.2f} | "
        f"{1000 * bare.cpu / count:.2f} | {broker_cpu} | 1 |"
    )
    for r in runs:
        broker_cpu = "-" if r.broker_cpu is None else f"{r.broker_cpu:.1f}"
        print(
            f"| {r.label} | {r.rate:,.0f} | {r.rate / bare.rate:.2f} | {r.seconds:.2f} | "
            f"{1000 * r.cpu / count:.2f} | {broker_cpu} | {r.records / count:.2f} |"
        )
    one, eos, two = runs
    print(f"exactly-once / at-least-once: {eos.rate / one.rate:.2f}")
    print(f"two workers / one: {two.rate / one.rate:.2f}")
    for label, (maximum, accepted, pushes, achieved, p50, p99) in latencies:
        print(
            f"push → anomaly, {label}, over HTTP at {achieved:,.0f} pushes/s (half of the "
            f"{maximum:,.0f}/s the worker got through from push to anomaly when flooded; its "
            f"HTTP side accepted {accepted:,.0f}/s meanwhile), {pushes} pushes: p50 {p50:.0f} ms, "
            f"p99 {p99:.0f} ms"
        )
    print(f"repeat: {command}   (load now {os.getloadavg()[0]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))
