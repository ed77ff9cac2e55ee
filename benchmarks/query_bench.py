"""Waybill queries (contract §9) on two live workers, beside a bare floor, in one run.

Design under test: each worker answers the waybills of its own partitions from its RocksDB
(``worker.local_states``: committed state, at most one checkpoint behind) and forwards the
rest to the owning worker, found in the consumer group's description. The alternative was a
materialised view of every waybill on every worker, fed by a compacted status topic; parts 3
and 4 give the figures that decide between them.

One local broker (``devbroker.LocalBroker``, or ``KAFKA_BOOTSTRAP_SERVERS``), one run:

1. **Setup.** The first 20 000 envelopes (``--quick``: 3 000) of the capture ``benchmarks
   replay --quick`` uses (2 000 simulated waybills, seed 7) preloaded on a fresh 8-partition
   ``tracking.raw``; two ``waybill-watch worker`` processes in one group (``wall`` clock,
   the default guarantee: exactly-once, checkpoint 0.1 s; started one after the other, see
   ``_serving``), each with
   ``WAYBILL_WATCH_ADVERTISED_URL=http://127.0.0.1:<port>`` and a tokens file with one viewer
   token, until the group has committed the end of everything it consumes (``live_bench.
   _caught_up``). The waybills are the keys of ``waybill-watch.updates`` (ticks left out);
   owners come from ``query.owners.OwnerDirectory`` (the workers' own lookup).
2. **Latency**, sequential requests over one keep-alive connection per worker (500 each,
   ``--quick`` 100; 1 000-waybill batches 50, ``--quick`` 10; after 5 warm-up requests),
   latency = request sent to body read: ``GET`` of a waybill the asked worker owns (local) and
   of one the other worker owns (forwarded); ``POST /api/waybills/query`` of 1 local and of 1
   forwarded waybill; ``POST`` of 1 000 distinct random waybills (mixed ownership; padded
   with unknown ids when fewer are known); and its two halves apart, a batch of only local
   and of only forwarded waybills (as many as the smaller share, at most 1 000). Each
   through both workers. The ``waybill_watch_query_forwards_total`` and the server-side
   ``waybill_watch_query_latency_seconds`` of the asked worker are read before and after each
   series (forwards per request; server mean). The floor, same run, same client loop: a bare
   aiohttp server in a child process, the same routes, answering fixed real bodies of the
   series' size (a single entry, the 1 000-entry answer). Ratios are of p50s. Then where a
   1 000-waybill query spends its time: the steps of ``api.py`` timed in this process with
   the workers' code on their stored states, and the owner lookup against the live group.
3. **Freshness.** 50 probes (``--quick``: 10): one new canonical scan (contract §5; the
   waybill's own courier, event time now) for a known waybill produced to ``tracking.events``
   (key = waybill, acks=all); then ``GET`` through the owner and through the other worker,
   each polled every 20 ms, until the scan's ``event_id`` appears; produce → visible. Two
   midpoints: the normalised scan readable (read_committed) on ``waybill-watch.updates``,
   and the owner's ``waybill_watch_tracking_events_processed_total`` counting it (applied in
   memory, before the checkpoint that commits it to RocksDB).
4. **Memory and size.** Worker RSS (``/proc``) after catching up and after parts 2-3; bytes on
   disk of each worker's data dir and of the RocksDB of the waybill partitions it owns (while
   running; again after the workers stopped); then, read-only, every stored waybill state
   (``s|<waybill>`` keys, key + value bytes) of those partitions: bytes per waybill, and the
   Python memory of a ``dict`` of them (``tracemalloc``). From these, the rejected view: every
   worker holding 1 000 000 waybills, and the Kafka records it adds (one status record per
   waybill update: the non-tick records of ``waybill-watch.updates``, per envelope), beside
   what the worker writes now (``live_bench._records_written``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from benchmarks.engines_bench import _reap, proc_cpu
from benchmarks.kafka_capture import preload, read_capture
from benchmarks.live_bench import (
    CAPTURE_WAYBILLS,
    PARTITIONS,
    Worker,
    _caught_up,
    _consumed,
    _free_port,
    _records_written,
    _spawn,
)
from benchmarks.replay_bench import ROOT, _capture
from waybill_watch.devbroker import LocalBroker
from waybill_watch.feeds import encode
from waybill_watch.query.owners import OwnerDirectory, partition_of
from waybill_watch.tokens import token_digest

TOKEN = "bench-query-viewer"  # noqa: S105 (a throw-away token of this run)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}
CST = timezone(timedelta(hours=8))
TICK_KEY = b"__tick__"  # worker.stages.TICK_KEY
STATE_KEY = b"s|"  # worker.ports.STATE_PREFIX + quix-streams' key separator
WARMUP = 5
BATCH = 1_000
POLL_S = 0.02
PROCESSED = "waybill_watch_tracking_events_processed_total"
PROBE_TIMEOUT_S = 20.0
VIEW_WAYBILLS = 1_000_000
SEED = 11
START_ATTEMPTS = 3
METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN|[+-]Inf)$", re.M)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# --- small helpers -----------------------------------------------------------------------------


def _pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def _rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (
        int(fields["VmRSS"].split()[0]) * 1024,
        int(fields["VmHWM"].split()[0]) * 1024,
    )


def _du(path: Path) -> int:
    """Apparent bytes of every file under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


def _metrics(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for metric, raw_labels, value in METRIC.findall(text):
        if metric != name:
            continue
        found = dict(LABEL.findall(raw_labels or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def _base(node: Node) -> str:
    return f"http://127.0.0.1:{node.worker.port}"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


@dataclass
class Node:
    """A worker of the run."""

    name: str
    worker: Worker
    url: str
    data_dir: Path
    partitions: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.worker.proc.pid


@dataclass
class Series:
    label: str
    asked: str
    samples: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    failures: int = 0
    forwards: float = 0.0  # sub-queries the asked worker forwarded, per request
    server_ms: float | None = None  # the asked worker's own mean (its latency histogram)
    peer_ms: float | None = None  # the other worker's mean for the sub-queries it answered
    body: bytes = b""  # a real body of about the mean size (the floor serves one like it)


# --- the floor: a bare aiohttp server with the same routes, fixed bodies -------------------------


def _floor(port: int, directory: Path) -> None:
    from aiohttp import web

    one = (directory / "get.json").read_bytes()
    post_one = (directory / "post1.json").read_bytes()
    post_many = (directory / "post1000.json").read_bytes()

    async def get(_: web.Request) -> web.Response:
        return web.Response(body=one, content_type="application/json")

    async def query(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            body=post_many if len(body) > 1000 else post_one, content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/api/waybills/{waybill}", get)
    app.router.add_post("/api/waybills/query", query)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextlib.contextmanager
def _floor_server(directory: Path) -> Iterator[str]:
    port = _free_port()
    log = directory / "floor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.query_bench", "floor", str(port), str(directory)],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"floor server exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port)):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        _reap(proc, grace=10)


# --- Kafka side ----------------------------------------------------------------------------------


@dataclass
class Updates:
    records: int  # non-tick records of waybill-watch.updates
    ticks: int
    end_offsets: int
    waybills: dict[str, int]  # waybill -> partition it was written to
    misplaced: int  # records whose partition is not query.owners.partition_of(key)


async def _read_updates(bootstrap: str, topic: str) -> Updates:
    """Every record of ``topic`` up to its current end (read_committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 2**20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)  # the last stable offsets (read_committed)
        await consumer.seek_to_beginning(*tps)
        records = ticks = misplaced = 0
        waybills: dict[str, int] = {}
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
            for tp, items in batch.items():
                for record in items:
                    if record.key == TICK_KEY:
                        ticks += 1
                    elif record.key is not None:
                        records += 1
                        waybill = record.key.decode()
                        waybills[waybill] = tp.partition
                        if partition_of(waybill, PARTITIONS) != tp.partition:
                            misplaced += 1
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return Updates(records, ticks, sum(ends.values()), waybills, misplaced)
    finally:
        await consumer.stop()


async def _coordinator(bootstrap: str, group: str) -> None:
    """Wait for the group's coordinator (a fresh broker creates ``__consumer_offsets`` first)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                await admin.find_coordinator(group)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


def _serving(node: Node, timeout: float = 120) -> None:
    """Wait for ``node``'s HTTP port: it has built its engine, changelog topics included.

    On fresh topics a worker may exit at start-up: quix-streams creates a changelog topic and
    at once inspects it, and on a loaded broker the topic may not be visible yet
    (``TopicNotFoundError``, which ``cli.create_worker_retrying`` does not retry). Started
    one at a time, and started again on that error (``START_ATTEMPTS``)."""
    deadline = time.monotonic() + timeout
    while True:
        if node.worker.proc.poll() is not None:
            tail = node.worker.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{node.name} exited:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node.worker.port}/healthz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _owners(bootstrap: str, group: str, topic: str, nodes: list[Node]) -> dict[int, Node]:
    """Partition -> node, once every partition has an owner and both workers have some."""
    directory = OwnerDirectory(bootstrap, group, topic)
    by_url = {n.url: n for n in nodes}
    deadline = time.monotonic() + 120
    while True:
        owners = {p: directory.owner(p, refresh=True) for p in range(PARTITIONS)}
        if all(u in by_url for u in owners.values()) and len(set(owners.values())) == len(nodes):
            return {p: by_url[u] for p, u in owners.items() if u is not None}
        if time.monotonic() > deadline:
            raise TimeoutError(f"the group never had every partition owned: {owners}")
        time.sleep(0.5)


# --- part 2: latency -----------------------------------------------------------------------------


async def _scrape(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/metrics") as response:
        return await response.text()


async def _server_side(http: aiohttp.ClientSession, base: str, route: str) -> tuple[float, ...]:
    text = await _scrape(http, base)
    name = "waybill_watch_query_latency_seconds"
    return (
        _metrics(text, "waybill_watch_query_forwards_total"),
        _metrics(text, f"{name}_sum", route=route),
        _metrics(text, f"{name}_count", route=route),
    )


async def _series(
    http: aiohttp.ClientSession,
    base: str,
    label: str,
    asked: str,
    n: int,
    request: Callable[[int], tuple[str, str, bytes | None]],
    route: str | None,
    keep_bodies: bool = True,
    peer: str | None = None,
) -> Series:
    """``n`` sequential requests (after ``WARMUP``): ``request(i)`` -> (method, path, body).
    With ``route``, the asked worker's metrics are read before and after; with ``peer`` (the
    other worker's base URL), its ``query`` route too (the sub-queries forwarded to it)."""
    series = Series(label, asked)
    before = await _server_side(http, base, route) if route else None
    peer_before = await _server_side(http, peer, "query") if peer else None
    bodies: list[bytes] = []
    for i in range(-WARMUP, n):
        method, path, data = request(i)
        started = time.perf_counter()
        async with http.request(
            method, base + path, data=data, headers=JSON if data is not None else AUTH
        ) as response:
            body = await response.read()
        elapsed = time.perf_counter() - started
        if i < 0:
            continue
        series.samples.append(elapsed)
        series.sizes.append(len(body))
        if response.status != 200:
            series.failures += 1
        if keep_bodies or not bodies:
            bodies.append(body)
    if before is not None and route is not None:
        after = await _server_side(http, base, route)
        total = n + WARMUP
        series.forwards = (after[0] - before[0]) / total
        count = after[2] - before[2]
        series.server_ms = 1000 * (after[1] - before[1]) / count if count else None
    if peer is not None and peer_before is not None:
        peer_after = await _server_side(http, peer, "query")
        count = peer_after[2] - peer_before[2]
        series.peer_ms = 1000 * (peer_after[1] - peer_before[1]) / count if count else None
    mean = statistics.mean(series.sizes)
    series.body = min(bodies, key=lambda b: abs(len(b) - mean))
    return series


@dataclass
class Plan:
    nodes: list[Node]
    owned: dict[str, list[str]]  # node name -> waybills it owns
    everything: list[str]


def _batch(rng: random.Random, known: list[str]) -> list[str]:
    """``BATCH`` distinct waybills: known ones, padded with unknown ids when there are fewer."""
    picked = rng.sample(known, min(BATCH, len(known)))
    picked += [f"ZZ{rng.randrange(10**13):013d}" for _ in range(BATCH - len(picked))]
    rng.shuffle(picked)
    return picked


async def _latency(plan: Plan, requests: int, batches: int) -> list[Series]:
    rng = random.Random(SEED)  # noqa: S311 (reproducible picks)
    out: list[Series] = []
    for node in plan.nodes:
        other = next(n for n in plan.nodes if n is not node)
        base = f"http://127.0.0.1:{node.worker.port}"
        peer = f"http://127.0.0.1:{other.worker.port}"
        local = rng.sample(plan.owned[node.name], min(len(plan.owned[node.name]), 1_000))
        remote = rng.sample(plan.owned[other.name], min(len(plan.owned[other.name]), 1_000))
        picks = [_batch(rng, plan.everything) for _ in range(batches + WARMUP)]
        payloads = [orjson.dumps({"waybills": p}) for p in picks]
        # the two halves of a mixed batch, apart: every waybill local, every one forwarded
        size = min(BATCH, len(plan.owned[node.name]), len(plan.owned[other.name]))
        halves = max(5, batches // 2)
        own_batches = [
            orjson.dumps({"waybills": rng.sample(plan.owned[node.name], size)})
            for _ in range(halves + WARMUP)
        ]
        their_batches = [
            orjson.dumps({"waybills": rng.sample(plan.owned[other.name], size)})
            for _ in range(halves + WARMUP)
        ]
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:

            def get(ids: list[str]) -> Callable[[int], tuple[str, str, bytes | None]]:
                return lambda i: ("GET", f"/api/waybills/{ids[i % len(ids)]}", None)

            def post(ids: list[str]) -> Callable[[int], tuple[str, str, bytes | None]]:
                return lambda i: (
                    "POST",
                    "/api/waybills/query",
                    orjson.dumps({"waybills": [ids[i % len(ids)]]}),
                )

            out.append(
                await _series(
                    http,
                    base,
                    "GET 1, owned here",
                    node.name,
                    requests,
                    get(local),
                    "get",
                    peer=peer,
                )
            )
            out.append(
                await _series(
                    http,
                    base,
                    "GET 1, forwarded",
                    node.name,
                    requests,
                    get(remote),
                    "get",
                    peer=peer,
                )
            )
            out.append(
                await _series(
                    http,
                    base,
                    "POST 1, owned here",
                    node.name,
                    requests,
                    post(local),
                    "query",
                    peer=peer,
                )
            )
            out.append(
                await _series(
                    http,
                    base,
                    "POST 1, forwarded",
                    node.name,
                    requests,
                    post(remote),
                    "query",
                    peer=peer,
                )
            )
            out.append(
                await _series(
                    http,
                    base,
                    f"POST {BATCH:,}, mixed owners",
                    node.name,
                    batches,
                    lambda i, p=payloads: ("POST", "/api/waybills/query", p[i + WARMUP]),
                    "query",
                    keep_bodies=False,
                    peer=peer,
                )
            )
            for label, bodies in (
                (f"POST {size:,}, all owned here", own_batches),
                (f"POST {size:,}, all forwarded", their_batches),
            ):
                out.append(
                    await _series(
                        http,
                        base,
                        label,
                        node.name,
                        halves,
                        lambda i, b=bodies: ("POST", "/api/waybills/query", b[i + WARMUP]),
                        "query",
                        keep_bodies=False,
                        peer=peer,
                    )
                )
        for s in out[-7:]:
            print(
                f"  {s.label} via {s.asked}: p50 {1000 * _pct(s.samples, 50):.2f} ms",
                flush=True,
            )
    return out


async def _floor_latency(
    base: str, plan: Plan, requests: int, batches: int
) -> tuple[Series, Series, Series]:
    rng = random.Random(SEED + 1)  # noqa: S311 (reproducible picks)
    ids = rng.sample(plan.everything, min(len(plan.everything), 1_000))
    payloads = [orjson.dumps({"waybills": _batch(rng, plan.everything)}) for _ in range(3)]
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        get = await _series(
            http,
            base,
            "floor: GET, fixed body",
            "floor",
            requests,
            lambda i: ("GET", f"/api/waybills/{ids[i % len(ids)]}", None),
            None,
        )
        one = await _series(
            http,
            base,
            "floor: POST 1, fixed body",
            "floor",
            requests,
            lambda i: (
                "POST",
                "/api/waybills/query",
                orjson.dumps({"waybills": [ids[i % len(ids)]]}),
            ),
            None,
        )
        many = await _series(
            http,
            base,
            f"floor: POST {BATCH:,}, fixed body",
            "floor",
            batches,
            lambda i: ("POST", "/api/waybills/query", payloads[i % len(payloads)]),
            None,
            keep_bodies=False,
        )
    return get, one, many


# --- part 3: freshness ---------------------------------------------------------------------------


@dataclass
class Fresh:
    owner: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)  # produce -> on the updates topic
    applied: list[float] = field(default_factory=list)  # produce -> the owner counted it
    missed: Counter[str] = field(default_factory=Counter)
    polls: int = 0


async def _freshness(
    bootstrap: str,
    prefix: str,
    plan: Plan,
    owner_of: Callable[[str], Node],
    probes: int,
) -> Fresh:
    rng = random.Random(SEED + 2)  # noqa: S311 (reproducible picks)
    fresh = Fresh()
    topic = f"{prefix}tracking.events"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    # the midpoint: when the normalised scan is readable (read_committed) on the updates topic
    observer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=10,
    )
    await observer.start()
    tps = [TopicPartition(f"{prefix}waybill-watch.updates", p) for p in range(PARTITIONS)]
    observer.assign(tps)
    await observer.seek_to_end(*tps)
    for tp in tps:
        await observer.position(tp)
    arrived: dict[bytes, float] = {}

    async def watch() -> None:
        while True:
            batch = await observer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.key is not None and record.key != TICK_KEY:
                        arrived.setdefault(record.key, now)

    watcher = asyncio.create_task(watch())
    sessions = {
        n.name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for n in plan.nodes
    }
    metrics = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    try:

        async def applied(node: Node, before: float, t0: float) -> float | None:
            """When the owner's waybill stage applied the scan (its counter, in memory: before
            the checkpoint that commits the state)."""
            while time.perf_counter() < t0 + PROBE_TIMEOUT_S:
                text = await _scrape(metrics, _base(node))
                if _metrics(text, PROCESSED, outcome="new") > before:
                    return time.perf_counter() - t0
                await asyncio.sleep(POLL_S / 2)
            return None

        async def visible(node: Node, waybill: str, event_id: bytes, t0: float) -> float | None:
            http = sessions[node.name]
            base = f"http://127.0.0.1:{node.worker.port}"
            deadline = t0 + PROBE_TIMEOUT_S
            while time.perf_counter() < deadline:
                async with http.get(f"{base}/api/waybills/{waybill}", headers=AUTH) as response:
                    body = await response.read()
                fresh.polls += 1
                if response.status == 200 and event_id in body:
                    return time.perf_counter() - t0
                await asyncio.sleep(POLL_S)
            return None

        for waybill in rng.sample(plan.everything, probes):
            owner = owner_of(waybill)
            other = next(n for n in plan.nodes if n is not owner)
            async with sessions[owner.name].get(
                f"http://127.0.0.1:{owner.worker.port}/api/waybills/{waybill}", headers=AUTH
            ) as response:
                courier = orjson.loads(await response.read()).get("courier") or "ZTO"
            now = datetime.now(CST).replace(microsecond=0)
            event = encode.canonical_event(
                {
                    "waybill": waybill,
                    "courier": courier,
                    "event_time": now - timedelta(seconds=1),
                    "received_at": now,
                    "status": "in_transit",
                    "location": {"city": "南京", "site": "南京转运中心"},
                    "description": f"【南京转运中心】快件已发出 probe {uuid.uuid4().hex[:8]}",
                    "source_feed": "merchant-wms",
                }
            )
            event_id = str(event["event_id"]).encode()
            before = _metrics(await _scrape(metrics, _base(owner)), PROCESSED, outcome="new")
            value = orjson.dumps(event)
            arrived.pop(waybill.encode(), None)
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, value, key=waybill.encode())
            fresh.acks.append(time.perf_counter() - t0)
            seen_owner, seen_other, counted = await asyncio.gather(
                visible(owner, waybill, event_id, t0),
                visible(other, waybill, event_id, t0),
                applied(owner, before, t0),
            )
            if counted is not None:
                fresh.applied.append(counted)
            hop = arrived.get(waybill.encode())
            if hop is not None:
                fresh.updates.append(hop - t0)
            for label, seen, into in (
                ("owner", seen_owner, fresh.owner),
                ("other", seen_other, fresh.other),
            ):
                if seen is None:
                    fresh.missed[label] += 1
                else:
                    into.append(seen)
            await asyncio.sleep(rng.uniform(0.05, 0.3))  # not in step with the checkpoints
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await observer.stop()
        await producer.stop()
        for http in [*sessions.values(), metrics]:
            await http.close()
    return fresh


# --- part 4: stored state ------------------------------------------------------------------------


@dataclass
class Stored:
    entries: int = 0
    key_bytes: int = 0
    value_bytes: int = 0
    other_keys: int = 0
    python_bytes: int = 0  # tracemalloc of a dict waybill -> value bytes
    sample: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value), up to BATCH
    get_seconds: float = 0.0  # rocksdict ``get`` of every sampled key


def _stored_states(paths: list[Path]) -> Stored:
    """Every ``s|<waybill>`` entry of the waybill partitions at ``paths`` (read-only)."""
    from rocksdict import AccessType, Options, Rdict

    stored = Stored()
    view: dict[str, bytes] = {}
    pairs: list[tuple[bytes, bytes]] = []
    for path in paths:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            mine: list[bytes] = []
            for key, value in db.items():
                if key.startswith(STATE_KEY):
                    pairs.append((bytes(key), bytes(value)))
                    mine.append(bytes(key))
                else:
                    stored.other_keys += 1
            started = time.perf_counter()
            for key in mine:
                db.get(key)
            stored.get_seconds += time.perf_counter() - started
        finally:
            db.close()
    stored.entries = len(pairs)
    stored.sample = pairs[:BATCH]
    stored.get_seconds *= len(stored.sample) / max(1, len(pairs))
    stored.key_bytes = sum(len(k) for k, _ in pairs)
    stored.value_bytes = sum(len(v) for _, v in pairs)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for key, value in pairs:
        view[key[len(STATE_KEY) :].decode()] = bytes(bytearray(value))  # a fresh copy
    stored.python_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del view
    return stored


def _render_cost(pairs: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """Seconds per waybill of what ``WaybillQueries.local_answers`` and the handler do to a
    stored state after reading it: decode, render, and the answer's ``jsonio.dumps`` (best of
    three, this process, the worker's code)."""
    from waybill_watch import jsonio
    from waybill_watch.domain.config import DetectionSettings
    from waybill_watch.domain.state import WaybillState
    from waybill_watch.query.view import WaybillView
    from waybill_watch.worker.ports import split_state_value

    view = WaybillView(DetectionSettings())
    best = {"decode": math.inf, "render": math.inf, "dumps": math.inf}
    n = max(1, len(pairs))
    for _ in range(3):
        t0 = time.perf_counter()
        states = [WaybillState.from_bytes(split_state_value(v)[1]) for _, v in pairs]
        t1 = time.perf_counter()
        rendered = {
            k[len(STATE_KEY) :].decode(): view.render(st)
            for (k, _), st in zip(pairs, states, strict=True)
        }
        t2 = time.perf_counter()
        jsonio.dumps({"results": rendered})
        t3 = time.perf_counter()
        for step, took in (("decode", t1 - t0), ("render", t2 - t1), ("dumps", t3 - t2)):
            best[step] = min(best[step], took / n)
    return best


@dataclass
class Lookup:
    thread_s: float  # per call: ``await asyncio.to_thread(directory.owner, p)`` (as api.py)
    direct_s: float  # per call: ``directory.owner(p)`` on the loop
    refresh_s: list[float]  # ``owner(p, refresh=True)``: one DescribeGroups


async def _lookup_cost(bootstrap: str, group: str, topic: str, calls: int) -> Lookup:
    """The owner lookup ``WaybillQueries.answer`` makes for every forwarded waybill, timed
    here with the workers' own ``OwnerDirectory`` against the live group."""
    directory = OwnerDirectory(bootstrap, group, topic)
    refresh = []
    for _ in range(5):
        started = time.perf_counter()
        await asyncio.to_thread(directory.owner, 0, refresh=True)
        refresh.append(time.perf_counter() - started)
        await asyncio.sleep(0.25)  # owners.py skips a re-read within 0.2 s of the last
    started = time.perf_counter()
    for i in range(calls):
        await asyncio.to_thread(directory.owner, i % PARTITIONS)
    thread = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for i in range(calls):
        directory.owner(i % PARTITIONS)
    direct = (time.perf_counter() - started) / calls
    return Lookup(thread, direct, refresh)


def _store_dir(node: Node, group: str, topic: str) -> Path:
    return node.data_dir / group / "default" / topic


# --- main ----------------------------------------------------------------------------------------


def _print_latency(
    command: str,
    floor: tuple[Series, Series, Series],
    series: list[Series],
) -> None:
    floor_get, floor_one, floor_many = floor
    print(f"\n### Query latency (`{command}`)\n")
    print(
        "| request | asked | n | p50 ms | p95 ms | p99 ms | body KB | p50 / floor p50 "
        "| max ms | server mean ms | other worker's mean ms | forwards / request | non-200 |"
    )
    print(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for s in [floor_get, floor_one, floor_many, *series]:
        if s.asked == "floor":
            ref: Series | None = s
        elif s.label.startswith("GET"):
            ref = floor_get
        elif s.label.startswith("POST 1, "):
            ref = floor_one
        elif s.label.startswith(f"POST {BATCH:,}, mixed"):
            ref = floor_many
        else:
            ref = None  # the halves of a batch: no floor of their own
        ratio = "-" if ref is None else f"{_pct(s.samples, 50) / _pct(ref.samples, 50):.1f}"
        server = "-" if s.server_ms is None else f"{s.server_ms:.2f}"
        peer = "-" if s.peer_ms is None else f"{s.peer_ms:.2f}"
        forwards = "-" if s.asked == "floor" else f"{s.forwards:.2f}"
        print(
            f"| {s.label} | {s.asked} | {len(s.samples)} | {1000 * _pct(s.samples, 50):.2f} | "
            f"{1000 * _pct(s.samples, 95):.2f} | {1000 * _pct(s.samples, 99):.2f} | "
            f"{statistics.mean(s.sizes) / 1024:,.1f} | "
            f"{ratio} | {1000 * max(s.samples):.2f} | "
            f"{server} | {peer} | {forwards} | {s.failures} |"
        )
    print(
        f"\nSequential requests over one keep-alive connection per worker, after {WARMUP} "
        "warm-up; latency = request sent to body read. Floor: a bare aiohttp server (child "
        "process, same routes) returning a real answer of the series' size; the ratio is to "
        "the floor row of the same request shape. Server mean: the asked worker's "
        "`waybill_watch_query_latency_seconds` over the series (auth to response built, "
        "not the HTTP write); the other worker's: the same histogram, its `query` route, for "
        "the sub-queries forwarded to it. Forwards: `waybill_watch_query_forwards_total` of "
        "the asked worker (sub-queries sent to the other), per request."
    )


def _print_breakdown(
    command: str,
    series: list[Series],
    stored: list[Stored],
    render: dict[str, float],
    lookup: Lookup,
    forwarded_share: float,
) -> None:
    sampled = sum(len(s.sample) for s in stored)
    get = sum(s.get_seconds for s in stored) / max(1, sampled)
    remote = BATCH * forwarded_share
    rows = [
        ("RocksDB `get` (rocksdict, read-only)", get * BATCH, f"× {BATCH:,} (owner side)"),
        ("`WaybillState.from_bytes`", render["decode"] * BATCH, f"× {BATCH:,} (owner side)"),
        ("`WaybillView.render`", render["render"] * BATCH, f"× {BATCH:,} (owner side)"),
        ("`jsonio.dumps` of the answer", render["dumps"] * BATCH, f"{BATCH:,} entries once"),
        (
            "`await asyncio.to_thread(OwnerDirectory.owner, p)`",
            lookup.thread_s * remote,
            f"× {remote:,.0f} forwarded waybills (one per waybill, `api.py` `answer`; "
            f"{1e6 * lookup.direct_s:.1f} µs called directly instead)",
        ),
    ]
    print(f"\n### Where a {BATCH:,}-waybill query spends its time (`{command}`)\n")
    print("| step | ms per query | how counted |")
    print("| --- | ---: | --- |")
    for label, seconds, note in rows:
        print(f"| {label} | {1000 * seconds:.1f} | {note} |")
    print(
        f"| sum | {1000 * sum(r[1] for r in rows):.1f} | the two workers' CPU together, "
        "HTTP and the forwarded sub-query's own (de)serialisation left out |"
    )
    refresh = statistics.mean(lookup.refresh_s)
    print(
        f"| `OwnerDirectory` refresh (DescribeGroups) | {1000 * refresh:.1f} | at most once "
        "per 2 s (`CACHE_S`), inside the request that finds the cache stale |"
    )
    batch = [s for s in series if s.label.startswith("POST") and not s.label.startswith("POST 1, ")]
    measured = "; ".join(
        f"{s.label} via {s.asked}: server mean {s.server_ms or float('nan'):.1f} ms, "
        + ("" if s.peer_ms is None else f"the other worker {s.peer_ms:.1f} ms, ")
        + f"client p50 {1000 * _pct(s.samples, 50):.1f} ms"
        for s in batch
    )
    print(
        f"\nSteps timed in this process with the workers' own code on {sampled:,} of the "
        f"stored states (best of 3), the lookup against the live group ({len(lookup.refresh_s)} "
        f"refreshes, then {BATCH // 2} calls). Measured in the run: {measured}."
    )


def main(quick: bool = False) -> int:
    n = 3_000 if quick else 20_000
    requests = 100 if quick else 500
    batches = 10 if quick else 50
    probes = 10 if quick else 50
    command = ".venv/bin/python -m benchmarks query" + (" --quick" if quick else "")
    began = time.perf_counter()
    print(
        f"command: {command}   ({os.cpu_count()} cores shared by the broker, two workers and "
        f"this process; load {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    capture = _capture(CAPTURE_WAYBILLS)
    envelopes = read_capture(capture.path)[:n]
    print(
        f"{len(envelopes):,} envelopes: the first of {capture.path.relative_to(ROOT)} "
        f"({capture.note}); {PARTITIONS} partitions",
        flush=True,
    )
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    nodes: list[Node] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="wbw-query-") as tmp:
        workdir = Path(tmp)
        try:
            if not bootstrap:
                broker = LocalBroker()
                bootstrap = broker.start()
            prefix = f"query{uuid.uuid4().hex[:8]}."
            group = f"{prefix}waybill-watch"
            updates_topic = f"{prefix}waybill-watch.updates"
            asyncio.run(
                preload(bootstrap, f"{prefix}tracking.raw", envelopes, partitions=PARTITIONS)
            )
            asyncio.run(_coordinator(bootstrap, group))
            tokens = workdir / "tokens.json"
            tokens.write_text(
                json.dumps({token_digest(TOKEN): {"role": "viewer", "merchant": None}})
            )
            spawned_at = time.time()
            restarts = 0
            for name in ("w0", "w1"):  # one at a time, each serving before the next
                for attempt in range(START_ATTEMPTS):
                    port = _free_port()
                    url = f"http://127.0.0.1:{port}"
                    env = {
                        "WAYBILL_WATCH_WEB_PORT": str(port),
                        "WAYBILL_WATCH_ADVERTISED_URL": url,
                        "WAYBILL_WATCH_API_TOKENS_FILE": str(tokens),
                        "WAYBILL_WATCH_CLOCK": "wall",
                    }
                    spawned = _spawn(bootstrap, prefix, workdir, name, **env)
                    node = Node(name, dataclasses.replace(spawned, port=port), url, workdir / name)
                    try:
                        _serving(node)
                    except RuntimeError as exc:
                        if "TopicNotFoundError" not in str(exc) or attempt + 1 == START_ATTEMPTS:
                            raise
                        restarts += 1
                        print(
                            f"  {name} exited at start-up (TopicNotFoundError); again", flush=True
                        )
                        continue
                    nodes.append(node)
                    break

            def check() -> None:
                for node in nodes:
                    if node.worker.proc.poll() is not None:
                        tail = node.worker.log.read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"{node.name} exited:\n{tail}")

            done = asyncio.run(_caught_up(bootstrap, group, _consumed(prefix), check, slack=8))
            cpu = {node.name: proc_cpu(node.pid) for node in nodes}
            owners = _owners(bootstrap, group, updates_topic, nodes)
            for p, node in sorted(owners.items()):
                node.partitions.append(p)
            time.sleep(1.0)  # a checkpoint or more: the last states are committed
            rss_caught = {node.name: _rss(node.pid) for node in nodes}
            disk_caught = {
                node.name: (
                    _du(node.data_dir),
                    sum(
                        _du(_store_dir(node, group, updates_topic) / str(p))
                        for p in node.partitions
                    ),
                )
                for node in nodes
            }
            written = asyncio.run(_records_written(bootstrap, prefix, group))
            updates = asyncio.run(_read_updates(bootstrap, updates_topic))
            everything = sorted(updates.waybills)
            owned: dict[str, list[str]] = {node.name: [] for node in nodes}
            for waybill in everything:
                owned[owners[partition_of(waybill, PARTITIONS)].name].append(waybill)
            print(
                f"caught up {done - spawned_at:.1f} s after the first spawn (one worker, then "
                f"the other once serving; {restarts} start-up restarts; worker CPU "
                + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())
                + f"); {len(everything):,} waybills in {updates.records:,} updates "
                f"({updates.ticks:,} ticks, {updates.misplaced} records off their "
                "`partition_of` partition); "
                + "; ".join(
                    f"{node.name} owns partitions {node.partitions} "
                    f"({len(owned[node.name]):,} waybills)"
                    for node in nodes
                ),
                flush=True,
            )
            if len(everything) < BATCH:
                print(
                    f"  each {BATCH:,}-waybill batch: the {len(everything):,} known waybills "
                    f"and {BATCH - len(everything):,} unknown ids (answered null)",
                    flush=True,
                )
            plan = Plan(nodes, owned, everything)

            series = asyncio.run(_latency(plan, requests, batches))
            lookup = asyncio.run(_lookup_cost(bootstrap, group, updates_topic, BATCH // 2))
            print(
                f"  owner lookup through a thread: {1e6 * lookup.thread_s:.0f} µs per call",
                flush=True,
            )
            floor_dir = workdir / "floor"
            floor_dir.mkdir()
            by_label = {(s.label, s.asked): s for s in series}
            gets = [s for s in series if s.label.startswith("GET")]
            get_mean = statistics.mean(x for s in gets for x in s.sizes)
            get_body = min((s.body for s in gets), key=lambda b: abs(len(b) - get_mean))
            (floor_dir / "get.json").write_bytes(get_body)
            (floor_dir / "post1.json").write_bytes(by_label["POST 1, owned here", "w0"].body)
            (floor_dir / "post1000.json").write_bytes(
                by_label[f"POST {BATCH:,}, mixed owners", "w0"].body
            )
            with _floor_server(floor_dir) as base:
                floor = asyncio.run(_floor_latency(base, plan, requests, batches))
            print(f"  floor GET: p50 {1000 * _pct(floor[0].samples, 50):.2f} ms", flush=True)

            def owner_of(waybill: str) -> Node:
                return owners[partition_of(waybill, PARTITIONS)]

            fresh = asyncio.run(_freshness(bootstrap, prefix, plan, owner_of, probes))
            rss_after = {node.name: _rss(node.pid) for node in nodes}
        finally:
            running = [n.worker for n in nodes if n.worker.proc.poll() is None]
            for w in running:
                w.proc.send_signal(signal.SIGTERM)
            for w in running:
                _reap(w.proc)
            if broker is not None:
                broker.stop()
        for node in nodes:
            if node.worker.proc.returncode not in (0, -signal.SIGTERM):
                ok = False
                print(f"{node.name} exited {node.worker.proc.returncode}", flush=True)
        disk_stopped = {
            node.name: sum(
                _du(_store_dir(node, group, updates_topic) / str(p)) for p in node.partitions
            )
            for node in nodes
        }
        stored = {
            node.name: _stored_states(
                [_store_dir(node, group, updates_topic) / str(p) for p in node.partitions]
            )
            for node in nodes
        }

    _print_latency(command, floor, series)
    sample = [pair for s in stored.values() for pair in s.sample][:BATCH]
    _print_breakdown(
        command,
        series,
        list(stored.values()),
        _render_cost(sample),
        lookup,
        forwarded_share=statistics.mean(len(n.partitions) for n in nodes) / PARTITIONS,
    )
    ok = ok and all(s.failures == 0 for s in [*series, *floor])

    print(f"\n### Freshness: new scan produced → visible in a query (`{command}`)\n")
    print("| through | probes | p50 ms | p95 ms | p99 ms | max ms | not seen in 20 s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, samples, key in (
        ("the owner (local read)", fresh.owner, "owner"),
        ("the other worker (forwarded)", fresh.other, "other"),
        ("(produce alone: acks=all)", fresh.acks, ""),
        ("(produce → readable on `waybill-watch.updates`)", fresh.updates, ""),
        ("(produce → applied by the owner's waybill stage)", fresh.applied, ""),
    ):
        print(
            f"| {label} | {len(samples)} | {1000 * _pct(samples, 50):.0f} | "
            f"{1000 * _pct(samples, 95):.0f} | {1000 * _pct(samples, 99):.0f} | "
            f"{1000 * max(samples, default=float('nan')):.0f} | "
            f"{fresh.missed[key] if key else '-'} |"
        )
    print(
        f"\nOne canonical scan per probe to `tracking.events` (key = waybill; random known "
        f"waybills); both workers polled at once, every {1000 * POLL_S:.0f} ms, until the "
        f"scan's event_id is in the answer ({fresh.polls:,} polls). Path: tracking.events → "
        "normalise → updates (read_committed: after the producing checkpoint) → waybill "
        "stage (applied) → RocksDB at its next checkpoint (exactly-once: 0.1 s, but quix-"
        "streams commits one only after its consumer poll returns: the next record, or "
        "`consumer_poll_timeout`, which `create_worker` sets to the checkpoint interval)."
    )
    ok = ok and not fresh.missed

    print(f"\n### Memory and size (`{command}`)\n")
    print(
        "| worker | partitions | waybills owned | RSS after catch-up MiB (peak) | RSS after "
        "queries MiB | data dir MiB | owned waybill RocksDB MiB (running / stopped) | stored "
        "states (key + value) | bytes / waybill: stored · on disk (running / stopped) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for node in nodes:
        rss, peak = rss_caught[node.name]
        whole, running_db = disk_caught[node.name]
        s = stored[node.name]
        per = (s.key_bytes + s.value_bytes) / s.entries if s.entries else float("nan")
        count = max(1, s.entries)
        print(
            f"| {node.name} | {node.partitions} | {len(owned[node.name]):,} | "
            f"{_mib(rss)} ({_mib(peak)}) | {_mib(rss_after[node.name][0])} | {_mib(whole)} | "
            f"{_mib(running_db)} / {_mib(disk_stopped[node.name])} | {s.entries:,} "
            f"({_mib(s.key_bytes + s.value_bytes)} MiB) | {per:,.0f} · "
            f"{running_db / count:,.0f} / {disk_stopped[node.name] / count:,.0f} |"
        )
    total = Stored()
    for s in stored.values():
        total.entries += s.entries
        total.key_bytes += s.key_bytes
        total.value_bytes += s.value_bytes
        total.python_bytes += s.python_bytes
        total.other_keys += s.other_keys
    entries = max(1, total.entries)
    per_state = (total.key_bytes + total.value_bytes) / entries
    per_python = total.python_bytes / entries
    per_disk = sum(disk_stopped.values()) / entries
    entry_json = statistics.mean(
        x for s in series if s.label.startswith("GET") and s.asked != "floor" for x in s.sizes
    )
    count = len(envelopes)
    updates_per = updates.records / count
    written_per = written / count
    workers = len(nodes)
    print(
        f"\nStored states: {total.entries:,} `s|<waybill>` entries ({total.other_keys:,} other "
        f"keys: deadline index, clock, outbox); {len(everything):,} waybills seen on the "
        f"updates topic. Mean stored state {per_state:,.0f} bytes (key + value), "
        f"{per_python:,.0f} bytes as a Python dict entry (waybill str → value bytes, "
        f"tracemalloc); mean rendered answer {entry_json:,.0f} bytes (GET bodies). RocksDB "
        "while running: memtables not yet flushed, the write-ahead log holds every write "
        "since; stopped: after the workers closed their stores. Data dir: every store "
        "(waybills, sites/couriers) and any partition held before the rebalance."
    )
    print(f"\n### The rejected alternative: every worker holds every waybill (`{command}`)\n")
    print("| estimate | per worker | note |")
    print("| --- | ---: | --- |")
    rows = [
        (
            f"view of {VIEW_WAYBILLS:,} waybills, stored state bytes",
            f"{_mib(per_state * VIEW_WAYBILLS)} MiB",
            "the bytes alone (e.g. RocksDB before overhead)",
        ),
        (
            f"view of {VIEW_WAYBILLS:,} waybills, Python dict",
            f"{_mib(per_python * VIEW_WAYBILLS)} MiB",
            "in memory, measured per entry above",
        ),
        (
            f"view of {VIEW_WAYBILLS:,} waybills, rendered JSON",
            f"{_mib(entry_json * VIEW_WAYBILLS)} MiB",
            "if it kept the answers",
        ),
        (
            f"view of {VIEW_WAYBILLS:,} waybills, RocksDB on disk",
            f"{_mib(per_disk * VIEW_WAYBILLS)} MiB",
            "owned partitions' disk per stored state (stopped), scaled",
        ),
        (
            f"this design: its share of {VIEW_WAYBILLS:,} waybills",
            f"{_mib(per_state * VIEW_WAYBILLS / workers)} MiB",
            f"stored state bytes / {workers} workers (already held for detection)",
        ),
        (
            "status records written (one per waybill update)",
            f"+{updates_per:.2f} / envelope",
            f"{updates.records:,} non-tick updates / {count:,} envelopes; the worker writes "
            f"{written_per:.2f} records / envelope now (+{100 * updates_per / written_per:.0f} %)",
        ),
        (
            "status records read",
            f"{updates_per:.2f} / envelope",
            f"every worker reads all of them: ×{workers} workers = "
            f"{workers * updates_per:.2f} / envelope for the group",
        ),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{'' if ok else 'FAILED; '}{time.perf_counter() - began:.0f} s in all; repeat: "
        f"{command}   (load now {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    return 0 if ok else 1


def _entry(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "floor":
        _floor(int(argv[1]), Path(argv[2]))
        return 0
    return main(quick="--quick" in argv)


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
