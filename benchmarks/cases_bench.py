"""The case service on a real broker and a real PostgreSQL, each beside its bare floor, one run.

PostgreSQL is ``devdb.LocalPostgres(durable=True)``: fsync and synchronous commit on, the
production setting (the tests run it with fsync off). Kafka is ``devbroker.LocalBroker`` (or
``KAFKA_BOOTSTRAP_SERVERS``). Both share the machine's cores with this process.

The anomaly records are real detector output made many: ``waybill-watch replay`` of the capture
``benchmarks replay --quick`` uses (2 000 simulated waybills, seed 7) gives a few hundred anomaly
events; each synthetic record copies one of them (its type, severity, merchant, courier,
reasons, evidence and ``actions``) onto a new waybill and time. The mix: ~70 % ``open`` over
distinct waybills (a few site and courier episodes among them), ~20 % ``resolved`` of earlier
ones (every waybill type auto-closes its case), ~10 % exact re-sends of earlier records (a
redelivery); keyed by subject like the worker's, so a waybill's records stay in order.

1. **Anomaly events applied per second.** N records (``--quick``: 2 000) preloaded on a fresh
   ``<prefix>anomalies`` of 8 partitions, then consumed from the earliest offset by
   ``cases.runtime.AnomalyConsumer`` (the consumer ``waybill-watch cases`` builds: aiokafka,
   ``getmany`` of 500, ``CaseService.apply_anomalies`` on ``PostgresCaseStore`` after
   ``migrate``, offsets committed after the database commit) until its committed offsets
   reach every partition's end. The floor, same run, same records, same consumer settings: a
   bare aiokafka loop that per ``getmany`` batch does one psycopg ``executemany`` INSERT of
   (key, value as jsonb) into a plain table, commits, then commits the offsets. Timed from
   each one's first batch to its last offset commit. Compared with what the worker emits.
   The relay (``cases.events``) and the timers do not run; the outbox rows are counted.
2. **Read latency with 100 000 cases** (``--quick``: 10 000): the same mix without re-sends,
   opened over the last 30 days by the service clock. ``CaseService.apply_anomalies`` fills
   at ~500 events/s here (part 1) and ``unit.save`` per decision at ~700-1 000, too slow for
   130 000 events in this benchmark's time, so two processes (one per core, cases split by
   subject) apply ``core.apply_anomaly`` with the case kept in memory and write each 1 000
   events' decisions in one transaction with the store's own upsert and row mapping
   (``pg._UPSERT``, ``pg._row``), pipelined: the ``cases`` rows the service writes (the
   outbox stays empty, as the relay keeps it). Then ``VACUUM (ANALYZE)`` (the state
   autovacuum reaches). The real app
   (``cases.app.create_app``: REST API with a tokens file, case pages with a session secret)
   serves in a child process; this process sends sequential requests over one keep-alive
   connection. The floor: a bare aiohttp handler in a child process returning a fixed body
   (the first ``/api/cases?limit=50`` page the app served), same client loop. Also:
   ``store.counts()``, the query the timer loop runs every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
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
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from psycopg.types.json import set_json_dumps

from benchmarks.engines_bench import proc_cpu
from benchmarks.kafka_capture import create_topic, read_capture
from benchmarks.replay_bench import ROOT, _capture
from waybill_watch.cases import core
from waybill_watch.cases import pg as case_pg
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.migrate import migrate
from waybill_watch.cases.model import Case
from waybill_watch.cases.pg import PostgresCaseStore
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.runtime import BATCH, AnomalyConsumer
from waybill_watch.cases.services import CaseService
from waybill_watch.cases.store import Account
from waybill_watch.cases.web.auth import hash_password
from waybill_watch.devbroker import LocalBroker
from waybill_watch.devdb import LocalPostgres, create_database
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.timefmt import local_now

PARTITIONS = 8
CAPTURE_WAYBILLS = 2_000
TZ = "Asia/Shanghai"
SEED = 11
FILL_BATCH = 1_000
FILL_PROCESSES = 2  # the fill only: one per core
FILL_DAYS = 30
WARMUP = 10
AGGREGATE_EVERY = 400  # one site/courier episode per this many records
#: What the worker emits: README "Performance", live benchmark of 2026-12-03: 0.05 anomaly
#: events per envelope at 898-1 238 envelopes/s (at-least-once), i.e. ~45-62 events/s.
WORKER_EMITS = (45, 62)
OPERATOR_TOKEN = "bench-operator-token"  # noqa: S105 (a throw-away token of this run)
USERNAME, PASSWORD = "bench-operator", "bench-password-not-secret"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# --- anomaly records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Templates:
    """Real detector output: waybill-scope ``open`` events, ``resolved`` ones by type, and
    site/courier ``open`` events."""

    opens: list[dict[str, Any]]
    resolved: dict[str, list[dict[str, Any]]]
    aggregates: list[dict[str, Any]]
    source: str


def _templates() -> Templates:
    from waybill_watch.feeds import build_feeds
    from waybill_watch.replay import Replay
    from waybill_watch.settings import Settings

    capture = _capture(CAPTURE_WAYBILLS)
    settings = Settings()
    started = time.perf_counter()
    events = Replay(settings.detection, build_feeds(settings)).run(read_capture(capture.path))
    dicts = [orjson.loads(e.model_dump_json()) for e in events]
    opens = [d for d in dicts if d["scope"] == "waybill" and d["status"] == "open"]
    aggregates = [d for d in dicts if d["scope"] != "waybill" and d["status"] == "open"]
    resolved: dict[str, list[dict[str, Any]]] = {}
    for d in dicts:
        if d["scope"] == "waybill" and d["status"] == "resolved":
            resolved.setdefault(d["type"], []).append(d)
    if not opens or not aggregates:
        raise RuntimeError(f"the replay of {capture.path} gave no usable anomaly events")
    source = (
        f"{len(events)} anomaly events of `waybill-watch replay` on "
        f"{capture.path.relative_to(ROOT)} ({capture.note}, replayed in "
        f"{time.perf_counter() - started:.1f} s): {len(opens)} waybill opens, "
        f"{sum(map(len, resolved.values()))} resolutions, {len(aggregates)} site/courier opens"
    )
    return Templates(opens, resolved, aggregates, source)


@dataclass(frozen=True)
class Record:
    at: float  # 0..1: where in the stream (and its time span) the record falls
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Mix:
    records: list[Record]
    cases: int  # distinct cases the records open
    closed: int  # of those, closed by a resolution
    resolved: int
    duplicates: int
    aggregates: int


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _shift(template: dict[str, Any], subject: str, anomaly_id: str, at: datetime) -> bytes:
    """The template as a new episode of ``subject`` detected at ``at`` (its ``actions`` due
    as long after detection as the template's were)."""
    old = template["subject"]
    raw = orjson.dumps(template)
    if template["scope"] == "waybill":
        raw = raw.replace(old.encode(), subject.encode())
    event = orjson.loads(raw)
    detected = datetime.fromisoformat(template["detected_at"])
    event["anomaly_id"] = anomaly_id
    event["detected_at"] = _stamp(at)
    for action in event.get("actions") or []:
        action["due_at"] = _stamp(at + (datetime.fromisoformat(action["due_at"]) - detected))
    if "opened_at" in event["evidence"]:
        event["evidence"]["opened_at"] = _stamp(at)
    return orjson.dumps(event)


def make_records(
    templates: Templates,
    n: int,
    start: datetime,
    span: timedelta,
    *,
    duplicates: float = 0.10,
    resolved: float = 0.20,
    tag: str = "A",
) -> Mix:
    """``n`` anomaly records in stream order (see the module docstring for the mix)."""
    rng = random.Random(f"{SEED}-{tag}-{n}")  # noqa: S311 (a reproducible mix)
    n_dup = round(n * duplicates)
    n_res = round(n * resolved)
    n_open = n - n_dup - n_res
    n_agg = max(2, n // AGGREGATE_EVERY)
    records: list[tuple[float, int, bytes, bytes]] = []
    seq = 0

    def add(at: float, key: str, value: bytes) -> None:
        nonlocal seq
        records.append((at, seq, key.encode(), value))
        seq += 1

    aggregate_slots = set(rng.sample(range(n_open), n_agg))
    waybill_opens: list[tuple[float, dict[str, Any], str, str]] = []
    for i in range(n_open):
        at = i / n_open
        when = start + span * at
        if i in aggregate_slots:
            tpl = templates.aggregates[i % len(templates.aggregates)]
            episode = hashlib.md5(f"{tag}|{i}".encode()).hexdigest()
            add(at, tpl["subject"], _shift(tpl, tpl["subject"], episode, when))
            continue
        tpl = templates.opens[i % len(templates.opens)]
        waybill = f"{tpl['subject'][:4]}{tag}{i:010d}"
        anomaly_id = hashlib.md5(f"{tpl['type']}|{waybill}|0".encode()).hexdigest()
        add(at, waybill, _shift(tpl, waybill, anomaly_id, when))
        waybill_opens.append((at, tpl, waybill, anomaly_id))
    for at, tpl, waybill, anomaly_id in rng.sample(waybill_opens, min(n_res, len(waybill_opens))):
        later = min(1.0, at + rng.uniform(0.001, 0.3))
        pool = templates.resolved.get(tpl["type"])
        if pool:
            res = dict(rng.choice(pool), type=tpl["type"], severity=tpl["severity"])
            res.update(subject=tpl["subject"], waybill=tpl["subject"], merchant=tpl["merchant"])
        else:  # a type the replay never resolved: the next scan resolves it
            res = dict(tpl, status="resolved", actions=[])
            res["evidence"] = {"resolved_by": {"status": "delivered"}}
        res["courier"] = tpl["courier"]
        add(later, waybill, _shift(res, waybill, anomaly_id, start + span * later))
    originals = list(records)
    for _ in range(n_dup):
        at, _, key, value = rng.choice(originals)
        add(min(1.0, at + rng.uniform(0.0, 0.01)), key.decode(), value)
    records.sort(key=lambda r: (r[0], r[1]))
    return Mix(
        records=[Record(at, key, value) for at, _, key, value in records],
        cases=len(waybill_opens) + n_agg,
        closed=min(n_res, len(waybill_opens)),
        resolved=min(n_res, len(waybill_opens)),
        duplicates=n_dup,
        aggregates=n_agg,
    )


# --- helpers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children and its live children (PostgreSQL runs a
    process per connection under the postmaster)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if pid in (int(entry.name), int(fields[1])):
            total += sum(int(f) for f in fields[11:15])
    return total / tick


@dataclass
class Cpu:
    """CPU seconds of this process, PostgreSQL and the broker over a window."""

    pg_pid: int
    broker_pid: int | None

    def mark(self) -> tuple[float, float, float]:
        broker = proc_cpu(self.broker_pid) if self.broker_pid else float("nan")
        return time.process_time(), tree_cpu(self.pg_pid), broker


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[94], q[98]


# --- part 1: anomaly events applied per second -------------------------------------------------


async def preload_keyed(bootstrap: str, topic: str, records: list[Record]) -> dict[Any, int]:
    """A fresh topic of ``PARTITIONS`` with the records, keyed; its end offsets."""
    await create_topic(bootstrap, topic, PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            pending.append(await producer.send(topic, record.value, key=record.key))
            if len(pending) >= 1000:
                for meta in await asyncio.gather(*pending):
                    tp = TopicPartition(topic, meta.partition)
                    ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
                pending.clear()
        for meta in await asyncio.gather(*pending):
            tp = TopicPartition(topic, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    """The consumer ``waybill-watch cases`` builds (``CaseServiceProcess.run``)."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=BATCH,
    )


@dataclass
class Throughput:
    label: str
    records: int
    seconds: float
    cpu: float
    pg_cpu: float
    broker_cpu: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


class _Progress:
    """First batch to the commit of every partition's end."""

    def __init__(self, ends: dict[Any, int], cpu: Cpu, stop: asyncio.Event) -> None:
        self.ends = ends
        self.cpu = cpu
        self.stop = stop
        self.position: dict[Any, int] = {}
        self.first: tuple[float, tuple[float, float, float]] | None = None
        self.last: tuple[float, tuple[float, float, float]] | None = None

    def started(self) -> None:
        if self.first is None:
            self.first = (time.perf_counter(), self.cpu.mark())

    def committed(self, offsets: dict[Any, int]) -> None:
        self.position.update(offsets)
        if all(self.position.get(tp, 0) >= end for tp, end in self.ends.items()):
            self.last = (time.perf_counter(), self.cpu.mark())
            self.stop.set()

    def result(self, label: str, records: int) -> Throughput:
        assert self.first is not None and self.last is not None
        (t0, (c0, p0, b0)), (t1, (c1, p1, b1)) = self.first, self.last
        return Throughput(label, records, t1 - t0, c1 - c0, p1 - p0, b1 - b0)


class _TimedConsumer(AnomalyConsumer):
    """``AnomalyConsumer`` unchanged, with a stopwatch around each batch."""

    progress: _Progress

    async def handle(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], stop: asyncio.Event
    ) -> None:
        self.progress.started()
        await super().handle(batch, stop)
        self.progress.committed({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})


async def _run_cases(
    bootstrap: str, topic: str, url: str, ends: dict[Any, int], cpu: Cpu, n: int
) -> tuple[Throughput, CaseMetrics]:
    await migrate(url)
    store = PostgresCaseStore(url)
    await store.open()
    metrics = CaseMetrics()
    service = CaseService(store, load_playbooks(), clock=lambda: local_now(TZ), metrics=metrics)
    consumer = _consumer(bootstrap, topic, f"{topic}.cases-{uuid.uuid4().hex[:6]}")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    stop = asyncio.Event()
    await producer.start()
    await consumer.start()
    try:
        worker = _TimedConsumer(consumer, producer, service, metrics, dlq_topic=f"{topic}.dlq")
        worker.progress = _Progress(ends, cpu, stop)
        await asyncio.wait_for(worker.run(stop), 600)
        return worker.progress.result("cases", n), metrics
    finally:
        await consumer.stop()
        await producer.stop()
        await store.close()


async def _run_floor(
    bootstrap: str, topic: str, url: str, ends: dict[Any, int], cpu: Cpu, n: int
) -> Throughput:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("CREATE TABLE anomaly_floor (key text, value jsonb NOT NULL)")
        await conn.commit()
        consumer = _consumer(bootstrap, topic, f"{topic}.floor-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        stop = asyncio.Event()
        progress = _Progress(ends, cpu, stop)
        try:
            deadline = time.monotonic() + 600
            while not stop.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError("the floor loop did not reach the end of the topic")
                batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
                if not batch:
                    continue
                progress.started()
                rows = [
                    (r.key.decode() if r.key else None, r.value.decode() if r.value else "null")
                    for records in batch.values()
                    for r in records
                ]
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "INSERT INTO anomaly_floor (key, value) VALUES (%s, %s::jsonb)", rows
                    )
                await conn.commit()
                offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
                await consumer.commit(offsets)
                progress.committed(offsets)
        finally:
            await consumer.stop()
    return progress.result("floor", n)


async def _check_cases(url: str) -> tuple[int, int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'closed'),"
            " (SELECT count(*) FROM outbox) FROM cases"
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def part_apply(
    bootstrap: str,
    pg: LocalPostgres,
    templates: Templates,
    n: int,
    broker_pid: int | None,
    header: str,
) -> bool:
    """Part 1; prints its table; whether the case store ended as expected."""
    now = local_now(TZ)
    mix = make_records(templates, n, now - timedelta(hours=1), timedelta(hours=1), tag="K")
    topic = f"casesbench{uuid.uuid4().hex[:8]}.anomalies"
    started = time.perf_counter()
    ends = asyncio.run(preload_keyed(bootstrap, topic, mix.records))
    loaded = time.perf_counter() - started
    sizes = [len(r.value) for r in mix.records]
    print(
        f"  {len(mix.records):,} records preloaded on {topic} ({PARTITIONS} partitions) in "
        f"{loaded:.1f} s: {mix.cases - mix.aggregates:,} waybill opens, {mix.aggregates} "
        f"site/courier opens, {mix.resolved:,} resolutions, {mix.duplicates:,} re-sends; "
        f"value {statistics.mean(sizes):,.0f} B mean, {max(sizes):,} B max",
        flush=True,
    )
    cpu = Cpu(pg.pid or 0, broker_pid)
    try:
        floor_url = create_database(pg.admin_url, "bench_floor")
        floor = asyncio.run(_run_floor(bootstrap, topic, floor_url, ends, cpu, len(mix.records)))
        print(f"  floor: {floor.rate:,.0f} records/s", flush=True)
        cases_url = create_database(pg.admin_url, "bench_apply")
        cases, metrics = asyncio.run(
            _run_cases(bootstrap, topic, cases_url, ends, cpu, len(mix.records))
        )
        print(f"  AnomalyConsumer: {cases.rate:,.0f} records/s", flush=True)
    finally:
        if not os.environ.get("CASES_BENCH_KEEP_TOPIC"):
            with contextlib.suppress(Exception):
                asyncio.run(_delete_topic(bootstrap, topic))
    found, closed, outbox = asyncio.run(_check_cases(cases_url))
    applied = metrics.anomalies.labels("applied")._value.get()
    unchanged = metrics.anomalies.labels("unchanged")._value.get()
    rejected = metrics.anomalies.labels("rejected")._value.get()
    ok = found == mix.cases and closed == mix.closed and rejected == 0
    print(f"\n{header}\n")
    print(
        "| what | anomaly records/s | ratio to floor | seconds | this process CPU s | "
        "PostgreSQL CPU s | broker CPU s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in (
        ("floor: aiokafka `getmany` → one `executemany` INSERT (key, jsonb) + commit", floor),
        ("`AnomalyConsumer` → `CaseService.apply_anomalies` → `PostgresCaseStore`", cases),
    ):
        print(
            f"| {label} | {r.rate:,.0f} | {r.rate / floor.rate:.3f} | {r.seconds:.2f} | "
            f"{r.cpu:.1f} | {r.pg_cpu:.1f} | {r.broker_cpu:.1f} |"
        )
    print()
    low, high = WORKER_EMITS
    print(
        f"Against what the worker emits (README live benchmark: 0.05 anomaly events per envelope "
        f"at ~900-1 240 envelopes/s, i.e. ~{low}-{high}/s): the case consumer applies "
        f"{cases.rate / high:,.1f}-{cases.rate / low:,.1f}× that "
        f"({'faster' if cases.rate > high else 'SLOWER'} than the worker can emit them)."
    )
    print(
        f"Per record: {1000 * cases.seconds / cases.records:.2f} ms wall, "
        f"{1000 * cases.cpu / cases.records:.2f} ms CPU in this process, "
        f"{1000 * cases.pg_cpu / cases.records:.2f} ms PostgreSQL CPU "
        f"(floor: {1000 * floor.seconds / floor.records:.3f} / "
        f"{1000 * floor.cpu / floor.records:.3f} / {1000 * floor.pg_cpu / floor.records:.3f})."
    )
    print(
        f"Check: {found:,} cases ({closed:,} closed) of {mix.cases:,} ({mix.closed:,}) expected; "
        f"{outbox:,} cases.events rows in the outbox; consumer counted {applied:,.0f} applied, "
        f"{unchanged:,.0f} unchanged, {rejected:,.0f} rejected -> {'ok' if ok else 'MISMATCH'}",
        flush=True,
    )
    return ok


# --- part 2: read latency ----------------------------------------------------------------------


def fill(url: str, templates: Templates, cases: int, workdir: Path) -> tuple[float, int, Mix]:
    """``cases`` cases in the store (see ``_fill_shard``); (seconds, events, the mix)."""
    n = round(cases * 9 / 7)  # opens : resolutions = 7 : 2, as in part 1 (no re-sends here)
    span = timedelta(days=FILL_DAYS)
    start = local_now(TZ) - span
    mix = make_records(templates, n, start, span, duplicates=0.0, resolved=2 / 9, tag="F")
    asyncio.run(migrate(url))
    shards: list[list[bytes]] = [[] for _ in range(FILL_PROCESSES)]
    for r in mix.records:  # by subject: every event of a case in one shard, in order
        shards[zlib.crc32(r.key) % FILL_PROCESSES].append(f"{r.at!r}\t".encode() + r.value)
    procs = []
    started = time.perf_counter()
    try:
        for i, lines in enumerate(shards):
            path = workdir / f"fill{i}.tsv"
            path.write_bytes(b"\n".join(lines))
            config = {"url": url, "shard": str(path), "start": start.isoformat(), "days": FILL_DAYS}
            (workdir / f"fill{i}.json").write_text(json.dumps(config))
            argv = [
                sys.executable,
                "-m",
                "benchmarks.cases_bench",
                "fill",
                str(workdir / f"fill{i}.json"),
            ]
            procs.append(subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE))
        for proc in procs:
            _, error = proc.communicate(timeout=900)
            if proc.returncode:
                raise RuntimeError(
                    f"a fill process failed:\n{error.decode(errors='replace')[-3000:]}"
                )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = time.perf_counter() - started

    async def finish() -> None:
        store = PostgresCaseStore(url)
        await store.open()
        try:
            await store.put_account(Account(USERNAME, hash_password(PASSWORD), "operator"))
        finally:
            await store.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("VACUUM (ANALYZE) cases")

    asyncio.run(finish())
    return seconds, len(mix.records), mix


async def _fill_shard(config: dict[str, Any], lines: list[bytes]) -> None:
    """One fill process: ``core.apply_anomaly`` on each event in order (the case it needs kept
    in memory instead of read back), each batch's decisions saved in one transaction with
    the store's own statement and row mapping (``pg._UPSERT``, ``pg._row``: the rows
    ``unit.save`` writes), one pipelined ``executemany``. Their ``cases.events`` are not
    written: no read touches the outbox, and in service the relay keeps it near empty."""
    start = datetime.fromisoformat(config["start"])
    span = timedelta(days=config["days"])
    records = []
    for line in lines:
        at, _, value = line.partition(b"\t")
        records.append((float(at), AnomalyEvent.model_validate_json(value)))
    remaining = Counter(core.case_id_for(core.case_key(e)) for _, e in records)
    playbooks = load_playbooks()
    cases: dict[str, Case] = {}
    async with await psycopg.AsyncConnection.connect(config["url"]) as conn:
        set_json_dumps(orjson.dumps, conn)  # the same jsonb as the stdlib's text, sooner
        for i in range(0, len(records), FILL_BATCH):
            chunk = records[i : i + FILL_BATCH]
            now = start + span * chunk[-1][0]
            decisions = []
            for _, event in chunk:
                case_id = core.case_id_for(core.case_key(event))
                decision = core.apply_anomaly(cases.get(case_id), event, playbooks, now)
                remaining[case_id] -= 1
                if decision is not None:
                    decisions.append(decision)
                    cases[case_id] = decision.case
                if not remaining[case_id]:
                    cases.pop(case_id, None)
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(case_pg._UPSERT, [case_pg._row(d.case) for d in decisions])


@dataclass
class Latency:
    label: str
    samples: list[float]
    sizes: list[int]
    failures: int

    @property
    def p50(self) -> float:
        return _quantiles(self.samples)[0]


async def _timed(
    http: aiohttp.ClientSession,
    label: str,
    n: int,
    url: Callable[[int], str],
    after: Callable[[bytes], None] | None = None,
    headers: dict[str, str] | None = None,
) -> Latency:
    samples: list[float] = []
    sizes: list[int] = []
    failures = 0
    for i in range(-WARMUP, n):
        target = url(i)
        started = time.perf_counter()
        async with http.get(target, headers=headers, allow_redirects=False) as response:
            body = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            failures += 1
            if failures == 1:
                print(f"  {label}: {target} answered {response.status}: {body[:200]!r}")
        if after is not None:
            after(body)
        if i >= 0:
            samples.append(elapsed)
            sizes.append(len(body))
    return Latency(label, samples, sizes, failures)


@contextlib.contextmanager
def _server(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """A child process serving ``config`` (see ``_serve``); its base URL."""
    port = _free_port()
    path = workdir / f"{config['kind']}.json"
    path.write_text(json.dumps({**config, "port": port}))
    log = workdir / f"{config['kind']}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cases_bench", "serve", str(path)],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{config['kind']} server did not start:\n"
                        + log.read_text(errors="replace")[-3000:]
                    ) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _sample_ids(url: str, n: int) -> tuple[list[str], str, int]:
    """``n`` random case ids, the merchant with the most cases and its count."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT case_id FROM cases TABLESAMPLE BERNOULLI (5) REPEATABLE (7) LIMIT %s", (n,)
        )
        ids = [str(r[0]) for r in await cursor.fetchall()]
        cursor = await conn.execute(
            "SELECT merchant, count(*) FROM cases WHERE merchant IS NOT NULL"
            " GROUP BY merchant ORDER BY 2 DESC, 1 LIMIT 1"
        )
        row = await cursor.fetchone()
    assert row is not None and ids
    return ids, str(row[0]), int(row[1])


async def _measure_app(base: str, url: str, n: int) -> tuple[list[Latency], bytes]:
    ids, merchant, merchant_cases = await _sample_ids(url, n)
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(base, cookie_jar=jar, connector=connector) as http:
        async with http.get("/api/cases?limit=50", headers=auth) as response:
            first_body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"/api/cases answered {response.status}: {first_body[:300]!r}")
        first_cursor = orjson.loads(first_body)["next_cursor"]
        results = [
            await _timed(
                http,
                "`GET /api/cases?limit=50` (first page)",
                n,
                lambda i: "/api/cases?limit=50",
                headers=auth,
            )
        ]
        cursor = first_cursor

        def follow(body: bytes) -> None:
            nonlocal cursor
            cursor = orjson.loads(body).get("next_cursor") or first_cursor

        results.append(
            await _timed(
                http,
                f"`GET /api/cases?limit=50&cursor=…` (pages 2-{n + WARMUP + 1}, following cursors)",
                n,
                lambda i: f"/api/cases?limit=50&cursor={cursor}",
                follow,
                auth,
            )
        )
        results.append(
            await _timed(
                http,
                "`GET /api/cases?status=open&type=transit_stall&limit=50`",
                n,
                lambda i: "/api/cases?status=open&type=transit_stall&limit=50",
                headers=auth,
            )
        )
        closed_n = max(20, n // 5)  # slow: fewer of them
        results.append(
            await _timed(
                http,
                f"`GET /api/cases?status=closed&limit=50` (closed cases; {closed_n} requests)",
                closed_n,
                lambda i: "/api/cases?status=closed&limit=50",
                headers=auth,
            )
        )
        results.append(
            await _timed(
                http,
                f"`GET /api/cases?merchant={merchant}&limit=50` ({merchant_cases:,} cases)",
                n,
                lambda i: f"/api/cases?merchant={merchant}&limit=50",
                headers=auth,
            )
        )
        results.append(
            await _timed(
                http,
                "`GET /api/cases/{id}` (random ids)",
                n,
                lambda i: f"/api/cases/{ids[i % len(ids)]}",
                headers=auth,
            )
        )
        # the pages: sign in with the login form's token, as a browser does
        async with http.get("/login") as response:
            match = CSRF.search(await response.text())
        if match is None:
            raise RuntimeError("the login form carries no csrf token")
        form = {"username": USERNAME, "password": PASSWORD, "csrf": match.group(1), "next": "/"}
        async with http.post("/login", data=form, allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"sign-in answered {response.status}, not 303")
        results.append(
            await _timed(http, "`GET /` (queue page, signed in)", n, lambda i: "/"),
        )
    return results, first_body


async def _measure_floor(base: str, n: int) -> Latency:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        return await _timed(http, "floor: bare aiohttp handler, fixed body", n, lambda i: "/")


async def _counts_latency(url: str, n: int) -> list[float]:
    store = PostgresCaseStore(url)
    await store.open()
    samples = []
    try:
        for i in range(-3, n):
            started = time.perf_counter()
            await store.counts(local_now(TZ))
            if i >= 0:
                samples.append(time.perf_counter() - started)
    finally:
        await store.close()
    return samples


async def _table_size(url: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT pg_total_relation_size('cases'), pg_database_size(current_database())"
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def part_read(
    pg: LocalPostgres, templates: Templates, cases: int, requests: int, header: str
) -> bool:
    """Part 2; prints its table; whether every request answered 200."""
    url = create_database(pg.admin_url, "bench_read")
    with tempfile.TemporaryDirectory(prefix="wbw-cases-bench-") as tmp:
        workdir = Path(tmp)
        seconds, events, mix = fill(url, templates, cases, workdir)
        table, database = asyncio.run(_table_size(url))
        print(
            f"  filled {mix.cases:,} cases ({mix.closed:,} closed, {mix.aggregates} site/courier) "
            f"from {events:,} anomaly events opened over the last {FILL_DAYS} days (service "
            f"clock): {FILL_PROCESSES} processes, `core.apply_anomaly` + the store's upsert "
            f"(`pg._UPSERT`/`pg._row`) pipelined per {FILL_BATCH:,} events (outbox left empty), "
            f"in {seconds:.1f} s "
            f"({events / seconds:,.0f} events/s, start-up included); then VACUUM (ANALYZE). "
            f"Table `cases` with indexes and TOAST {table / 2**20:,.0f} MiB, database "
            f"{database / 2**20:,.0f} MiB",
            flush=True,
        )
        tokens = workdir / "tokens.json"
        from waybill_watch.tokens import token_digest

        tokens.write_text(
            json.dumps({token_digest(OPERATOR_TOKEN): {"role": "operator", "merchant": None}})
        )
        config = {"kind": "cases", "url": url, "tokens": str(tokens), "secret": uuid.uuid4().hex}
        with _server(config, workdir) as base:
            results, body = asyncio.run(_measure_app(base, url, requests))
        (workdir / "body.json").write_bytes(body)
        with _server({"kind": "floor", "body": str(workdir / "body.json")}, workdir) as base:
            floor = asyncio.run(_measure_floor(base, requests))
    counts = asyncio.run(_counts_latency(url, 8))
    print(f"\n{header}\n")
    print("| request | p50 ms | p95 ms | p99 ms | body KB | p50 / floor p50 | non-200 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in [floor, *results]:
        p50, p95, p99 = _quantiles(r.samples)
        print(
            f"| {r.label} | {1000 * p50:.2f} | {1000 * p95:.2f} | {1000 * p99:.2f} | "
            f"{statistics.mean(r.sizes) / 1024:.1f} | {p50 / floor.p50:.1f} | {r.failures} |"
        )
    c50, c95, c99 = _quantiles(counts)
    print(
        f"| `PostgresCaseStore.counts()` direct (the timer loop's gauges, every "
        f"1 s) | {1000 * c50:.2f} | {1000 * c95:.2f} | {1000 * c99:.2f} | - | - | - |"
    )
    print()
    print(
        f"{requests} sequential requests each unless said (after {WARMUP} warm-up), one keep-alive "
        "connection; the app and the floor each in a child process; latency = request sent "
        "to body read.",
        flush=True,
    )
    return all(r.failures == 0 for r in results) and floor.failures == 0


# --- the servers (child processes) -------------------------------------------------------------


async def _serve(config: dict[str, Any], body: bytes) -> None:
    from aiohttp import web

    store = None
    if config["kind"] == "floor":

        async def handle(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_get("/", handle)
    else:
        from waybill_watch.cases.app import Readiness, create_app
        from waybill_watch.tokens import TokenRegistry

        store = PostgresCaseStore(config["url"])
        await store.open()
        metrics = CaseMetrics()
        service = CaseService(store, load_playbooks(), clock=lambda: local_now(TZ), metrics=metrics)
        app = create_app(
            service,
            metrics,
            TokenRegistry(Path(config["tokens"])),
            Readiness(store),
            session_secret=config["secret"].encode(),
            timezone=TZ,
        )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config["port"]).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if store is not None:
            await store.close()


# --- main --------------------------------------------------------------------------------------


def _pg_settings(url: str) -> str:
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        rows = [
            (name, conn.execute(f"SHOW {name}").fetchone())
            for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
        ]
    settings = ", ".join(f"{name}={row[0] if row else '?'}" for name, row in rows)
    return f"PostgreSQL {version[0] if version else '?'} ({settings})"


class _QuietCoordinatorWait(logging.Filter):
    """aiokafka logs a fresh broker's group coordinator coming up as errors (it retries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(
            text in message
            for text in ("GroupCoordinatorNotAvailable", "Marking the coordinator dead")
        )


def main(quick: bool = False) -> int:
    n = 2_000 if quick else 20_000
    cases = 10_000 if quick else 100_000
    requests = 100 if quick else 500
    command = ".venv/bin/python -m benchmarks cases" + (" --quick" if quick else "")
    began = time.perf_counter()
    print(
        f"command: {command}   ({os.cpu_count()} cores shared by this process, PostgreSQL and "
        f"the broker; load {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_QuietCoordinatorWait())
    broker = None
    pg = LocalPostgres(durable=True)
    ok = True
    try:
        templates = _templates()
        print(f"templates: {templates.source}", flush=True)
        pg.start()
        database = f"{_pg_settings(pg.admin_url)}, local server, durable=True (production)"
        print(f"database: {database}", flush=True)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = LocalBroker()
            bootstrap = broker.start()
        print(f"\n### 1. Anomaly events applied per second ({command})\n", flush=True)
        header = f"`{command}` · {database} · {os.cpu_count()} cores"
        pid = broker.pid if broker else None
        ok = part_apply(bootstrap, pg, templates, n, pid, header) and ok
        if broker is not None:
            broker.stop()
            broker = None
        print(f"\n### 2. Read latency with {cases:,} cases ({command})\n", flush=True)
        ok = part_read(pg, templates, cases, requests, header) and ok
    finally:
        if broker is not None:
            broker.stop()
        pg.stop()
    print(
        f"\n{'' if ok else 'FAILED; '}{time.perf_counter() - began:.0f} s in all; repeat: "
        f"{command}   (load now {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    return 0 if ok else 1


def _entry(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "fill":
        config = json.loads(Path(argv[1]).read_text())
        asyncio.run(_fill_shard(config, Path(config["shard"]).read_bytes().split(b"\n")))
        return 0
    if len(argv) == 2 and argv[0] == "serve":
        config = json.loads(Path(argv[1]).read_text())
        body = Path(config["body"]).read_bytes() if config["kind"] == "floor" else b""
        asyncio.run(_serve(config, body))
        return 0
    return main(quick="--quick" in argv)


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
