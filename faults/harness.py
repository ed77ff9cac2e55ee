"""The fault run: load, nemesis, verifier, report (``python -m faults [--quick]``).

Quick (one ``LocalBroker``, one worker): 3 SIGKILLs, the broker SIGKILLed and restarted (ingest
must answer 503 meanwhile and the couriers' retries must get through after), and the worker's
data dir filled up around one of the kills (it may crash-loop until the disk is freed).

Long (a 3-node ``LocalCluster``): 20 SIGKILLs with the worker count going 1 → 3 → 1 under
load, one broker node SIGKILLed and brought back, the data dir full once and read-only once.

Before every kill a batch of ``deadline`` waybills is pushed whose stall deadline falls a few
seconds later, i.e. while the worker is down: the verifier checks each of them opened.

The verifier (after the load stopped, every deadline passed and the group committed all of
``tracking.raw``) reads every topic from the start, ``read_committed``, and checks:

* ``accepted_on_raw``: every push that got a 200 is on ``tracking.raw``;
* ``scans_exactly_once``: the scans on ``tracking.events`` are exactly replay's forwarded scans,
  each once, and every accepted push's trace is there in full;
* ``anomalies_match_replay``: the (anomaly_id, type, status) multiset on ``anomalies`` equals
  ``waybill-watch replay --until <verification time>`` of ``tracking.raw``; no id opened twice;
* ``deadlines_fired``: every deadline waybill has its ``transit_stall`` open (and how many of
  those deadlines fell inside a kill window);
* ``dlq_exact``: ``tracking.dlq`` holds exactly the malformed records written to
  ``tracking.raw`` (each once), nothing else;
* ``retries_succeeded``: no push gave up; ``ingest_503_while_broker_down`` (quick): 503s seen
  during the outage and no 200 answered while the only broker was down;
* ``workers_recovered``: after every kill and fault the worker processed again in time.

The live worker runs on the ``wall`` clock (the default) with a one-partition ``tracking.raw``,
so it reads the envelopes in the order replay does; the traffic (``faults.traffic``) is built so
that no detection depends on when an envelope is processed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from faults.disk import FaultyDisk
from faults.kafka import group_lag, produce, read_all
from faults.procs import ROOT, Proc, spawn, wait_ready
from faults.report import write_report
from faults.traffic import APP_KEY, LoadGen, Traffic
from waybill_watch.devbroker import LocalBroker, LocalCluster
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.ops import metric_sum
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

RECOVERY_TIMEOUT_S = 180.0
#: The longest a disk fault is held while waiting for it to bite.
FAULT_MAX_S = 60.0
WORKER_ENV = {
    "WAYBILL_WATCH_KDNIAO_APP_KEY": APP_KEY,
    "WAYBILL_WATCH_RAW_PARTITIONS": "1",
    "WAYBILL_WATCH_PARTITIONS": "4",
    # a restarted worker joins once the group dropped the killed one (broker minimum 6 s)
    "WAYBILL_WATCH_SESSION_TIMEOUT_SECONDS": "6",
    # small memtables: the faulty data dir is a 256 MiB tmpfs
    "WAYBILL_WATCH_ROCKSDB_WRITE_BUFFER_MB": "8",
    "WAYBILL_WATCH_ROCKSDB_BLOCK_CACHE_MB": "64",
}
INGEST_ENV = {"WAYBILL_WATCH_KDNIAO_APP_KEY": APP_KEY}


def malformed_records(run: str) -> list[bytes]:
    """Records no feed can read, each distinct (a marker), none with a newline."""
    now = datetime.now(UTC).isoformat()
    out: list[bytes] = []
    for i in range(2):
        tag = f"{run}-{i}"
        out += [
            f"not json at all {tag} {{".encode(),
            orjson.dumps({"hello": "world", "tag": tag}),
            orjson.dumps(
                {
                    "feed": "nosuchfeed",
                    "received_at": now,
                    "content_type": "text/plain",
                    "headers": {},
                    "body": f"x {tag}",
                }
            ),
            orjson.dumps(
                {
                    "feed": "kdniao",
                    "received_at": now,
                    "content_type": "application/x-www-form-urlencoded",
                    "headers": {},
                    "body": f"RequestData=%7Bbroken-{tag}&RequestType=102",
                }
            ),
            b"\xff\xfe\x00 not utf-8 " + tag.encode(),
        ]
    return out


@dataclass
class Window:
    """A fault interval: from the fault to the worker processing again."""

    what: str
    began: float
    ended: float | None = None
    recovery_s: float | None = None


@dataclass
class State:
    quick: bool
    out: Path
    run: str
    prefix: str
    began: float = field(default_factory=time.monotonic)
    kills: int = 0
    broker_outages: int = 0
    disk_faults: int = 0
    windows: list[Window] = field(default_factory=list)
    outage: tuple[float, float] | None = None
    timeline: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.began:7.1f} s] {text}"
        self.timeline.append(line)
        print(line, flush=True)


class Harness:
    def __init__(self, quick: bool, out: Path, rate: float | None, seed: int) -> None:
        run = uuid.uuid4().hex[:6].upper()
        self.s = State(quick, out, run, f"faults{run.lower()}.")
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible schedule
        self.rate = rate or (12.0 if quick else 20.0)
        self.traffic = Traffic(run, seed)
        self.broker: LocalBroker | None = None
        self.cluster: LocalCluster | None = None
        self.bootstrap = ""
        self.workers: list[Proc] = []
        self.ingests: list[Proc] = []
        self.disk = FaultyDisk(out / "w0-data")
        self.load: LoadGen | None = None
        self.malformed: list[bytes] = []

    # -- set-up -------------------------------------------------------------------------
    def _start_kafka(self) -> None:
        if self.s.quick:
            from waybill_watch.localproc import free_port

            self.broker = LocalBroker(free_port(), self.s.out / "broker")
            self.bootstrap = self.broker.start()
        else:
            self.cluster = LocalCluster(data_dir=self.s.out / "cluster")
            self.bootstrap = self.cluster.start()

    def _worker(self, index: int) -> Proc:
        data = self.disk.path if index == 0 and self.disk.mounted else None
        proc = spawn(
            f"worker-{index}",
            "worker",
            self.bootstrap,
            self.s.prefix,
            self.s.out,
            data_dir=data,
            env=WORKER_ENV,
        )
        return proc

    async def _processing(self, worker: Proc, timeout: float = RECOVERY_TIMEOUT_S) -> float:
        """Seconds until ``worker`` serves with partitions assigned (exits are restarted by
        the supervisor meanwhile)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            text = await worker.metrics()
            if metric_sum(text, "waybill_watch_partitions_assigned") > 0:
                return time.monotonic() - began
            await asyncio.sleep(0.3)
        raise TimeoutError(f"{worker.name} not processing {timeout:.0f} s after a fault")

    async def _supervise(self) -> None:
        """Restart any process that exited without the nemesis asking (a supervisor would)."""
        while True:
            for proc in self.workers + self.ingests:
                if proc.held or proc.running() or proc.proc is None:
                    continue
                exited, code = proc.proc, proc.proc.returncode
                proc.self_exits.append((time.monotonic(), code, proc.last_error()))
                self.s.log(f"{proc.name} exited by itself ({code}): {proc.last_error()[:160]}")
                await asyncio.sleep(1.0)
                # only if nobody (the nemesis) took the process over or restarted it meanwhile:
                # two processes on one port and data dir would crash-loop each other
                if not proc.held and proc.proc is exited:
                    proc.start()
            await asyncio.sleep(0.5)

    # -- the nemesis --------------------------------------------------------------------
    def _deadlines(self, n: int) -> None:
        assert self.load is not None
        for _ in range(n):
            self.load.inject(self.traffic.deadline(self.rng.uniform(3.0, 9.0)))

    async def kill(
        self,
        worker: Proc,
        fault: Callable[[Proc], Coroutine[Any, Any, None]] | None = None,
        what: str = "kill",
    ) -> None:
        """Deadline batch, SIGKILL, restart (``fault``: applies a disk fault, restarts the
        worker on it, holds it, lifts it), wait until the worker processes again."""
        self._deadlines(4)
        await asyncio.sleep(1.0)
        worker.held = True
        code = worker.kill()
        if code != -9:
            worker.self_exits.append((time.monotonic(), code, worker.last_error()))
        self.s.kills += 1
        window = Window(f"{what} {worker.name}", time.time())
        self.s.windows.append(window)
        self.s.log(f"kill {self.s.kills}: {worker.name} ({what})")
        if fault is None:
            worker.start()
            worker.held = False
        else:
            await fault(worker)
        try:
            window.recovery_s = await self._processing(worker)
        except TimeoutError as exc:
            self.s.errors.append(str(exc))
            raise
        window.ended = time.time()
        self.s.log(f"{worker.name} processing {time.time() - window.began:.1f} s after the kill")

    async def disk_full(self, worker: Proc, hold: float) -> None:
        written = await asyncio.to_thread(self.disk.fill)
        self.s.log(f"data dir full ({written >> 20} MiB filler); restarting on it, {hold:.0f} s")
        await self._hold_fault(worker, hold, keep_full=True)
        self.disk.unfill()
        self.s.log("data dir freed")

    async def disk_read_only(self, worker: Proc, hold: float) -> None:
        await asyncio.to_thread(self.disk.read_only, True)
        self.s.log(f"data dir read-only; restarting on it, {hold:.0f} s")
        await self._hold_fault(worker, hold)
        await asyncio.to_thread(self.disk.read_only, False)
        self.s.log("data dir writable again")

    async def _hold_fault(self, worker: Proc, hold: float, *, keep_full: bool = False) -> None:
        """Start ``worker`` on the faulty disk and keep the fault at least ``hold`` s, and on
        (at most ``FAULT_MAX_S``) until it bit: the worker exited or logged an IO error (its
        start-up under load can take longer than ``hold``); the supervisor restarts it when
        it exits. The note says what the fault did."""
        self.s.disk_faults += 1
        exits = len(worker.self_exits)
        mark = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        worker.start()
        worker.held = False
        began = time.monotonic()
        hits = 0
        while True:
            await asyncio.sleep(0.5)
            if keep_full:  # keep it full: RocksDB deletes obsolete files when it opens
                await asyncio.to_thread(self.disk.fill)
            hits = _io_errors(worker.log_path, mark)
            bit = hits > 0 or len(worker.self_exits) > exits
            held = time.monotonic() - began
            if held >= FAULT_MAX_S or (held >= hold and bit):
                break
        note = (
            f"disk fault held {time.monotonic() - began:.0f} s: worker exits meanwhile="
            f"{len(worker.self_exits) - exits}, log lines naming an IO error or a RocksDB "
            f"lock={hits}"
        )
        self.s.notes.append(note)
        self.s.log(note)

    async def broker_outage(self, down: float) -> None:
        """Quick: the only broker SIGKILLed for ``down`` s, then started on its data again."""
        assert self.broker is not None
        self._deadlines(4)
        await asyncio.sleep(1.0)
        self.broker.kill()
        killed = time.time()
        self.s.broker_outages += 1
        window = Window("broker down", killed)
        self.s.windows.append(window)
        self.s.log(f"broker SIGKILLed; down for {down:.0f} s")
        await asyncio.sleep(down)
        back = time.time()
        await asyncio.to_thread(self.broker.start)
        self.s.outage = (killed, back)
        self.s.log(f"broker back ({time.time() - back:.1f} s to start)")
        window.recovery_s = await self._processing(self.workers[0])
        window.ended = time.time()
        self.s.log(f"worker processing {window.ended - killed:.1f} s after the broker died")

    async def node_outage(
        self, until: Callable[[], Coroutine[Any, Any, None]], max_down: float
    ) -> None:
        """Long: one node of the cluster SIGKILLed until ``until()`` or ``max_down`` s."""
        assert self.cluster is not None
        index = self.rng.randrange(self.cluster.size)
        self.cluster.kill(index)
        killed = time.time()
        self.s.broker_outages += 1
        self.s.log(f"broker node {index + 1} SIGKILLed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until(), max_down)
        await asyncio.to_thread(self.cluster.restart, index)
        self.s.windows.append(Window(f"node {index + 1} down", killed, time.time()))
        self.s.log(f"broker node {index + 1} back after {time.time() - killed:.0f} s")

    def _kills(self, n: int) -> Callable[[], Coroutine[Any, Any, None]]:
        async def reached() -> None:
            while self.s.kills < n:  # noqa: ASYNC110 - a counter, not an event
                await asyncio.sleep(1)

        return reached

    async def nemesis_quick(self) -> None:
        await asyncio.sleep(8)
        w = self.workers[0]
        await self.kill(w)
        await asyncio.sleep(self.rng.uniform(3, 6))
        await self.broker_outage(15)
        await asyncio.sleep(self.rng.uniform(3, 6))
        if self.disk.mounted:
            await self.kill(w, lambda w: self.disk_full(w, 20), "kill on a full disk")
        else:
            await self.kill(w)
        await asyncio.sleep(self.rng.uniform(3, 6))
        await self.kill(w)
        await asyncio.sleep(6)

    async def nemesis_long(self) -> None:
        await asyncio.sleep(10)
        w0 = self.workers[0]
        for i in range(6):  # phase 1: one worker
            if i == 3 and self.disk.mounted:
                await self.kill(w0, lambda w: self.disk_full(w, 20), "kill on a full disk")
            else:
                await self.kill(w0)
            await asyncio.sleep(self.rng.uniform(2, 8))
        self.s.log("scaling to 3 workers")
        for index in (1, 2):
            self.workers.append(self._worker(index))
        for extra in self.workers[1:]:
            await wait_ready(extra, restart=False)
        await asyncio.sleep(10)
        node: asyncio.Task[None] | None = None
        for i in range(8):  # phase 2: three workers; a broker node dies during it
            if i == 2:
                node = asyncio.create_task(self.node_outage(self._kills(self.s.kills + 3), 60))
            await self.kill(self.rng.choice(self.workers))
            await asyncio.sleep(self.rng.uniform(2, 6))
        if node is not None:
            await node
        self.s.log("scaling back to 1 worker")
        for extra in self.workers[1:]:
            extra.held = True
            await asyncio.to_thread(extra.stop)
        await self._processing(w0)
        await asyncio.sleep(10)
        for i in range(6):  # phase 3: one worker again
            if i == 2 and self.disk.mounted:
                await self.kill(
                    w0, lambda w: self.disk_read_only(w, 20), "kill on a read-only disk"
                )
            else:
                await self.kill(w0)
            await asyncio.sleep(self.rng.uniform(2, 8))

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        s = self.s
        s.out.mkdir(parents=True, exist_ok=True)
        s.log(f"{'quick' if s.quick else 'long'} run {s.run}, out {s.out}, rate {self.rate}/s")
        if not self.disk.mount():
            s.notes.append(self.disk.problem or "no faulty disk")
            s.log(self.disk.problem or "no faulty disk")
        supervisor: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(self._start_kafka)
            s.log(f"kafka up: {self.bootstrap}")
            self.workers.append(self._worker(0))
            s.log(f"worker-0 ready in {await wait_ready(self.workers[0]):.1f} s")
            for i in range(2):
                self.ingests.append(
                    spawn(f"ingest-{i}", "ingest", self.bootstrap, s.prefix, s.out, env=INGEST_ENV)
                )
            for ingest in self.ingests:
                await wait_ready(ingest)
            self.malformed = malformed_records(s.run)
            await produce(self.bootstrap, f"{s.prefix}tracking.raw", self.malformed)
            s.log(f"{len(self.malformed)} malformed records written to tracking.raw")
            supervisor = asyncio.create_task(self._supervise())
            self.load = LoadGen([p.base_url for p in self.ingests], self.traffic, self.rate)
            loader = asyncio.create_task(self.load.run())
            try:
                await (self.nemesis_quick() if s.quick else self.nemesis_long())
            finally:
                self.load.stop()
                s.log("load stopped; waiting for retries in flight")
                await loader
            s.log(f"{len(self.load.results)} pushes sent")
            return await self.verify()
        except Exception as exc:
            s.errors.append(f"{type(exc).__name__}: {exc}")
            s.log(f"run failed: {type(exc).__name__}: {exc}")
            return self.report({}, {})
        finally:
            if supervisor is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
            for proc in self.workers + self.ingests:
                proc.held = True
                await asyncio.to_thread(proc.stop)
            if self.broker is not None:
                self.broker.stop()
            if self.cluster is not None:
                self.cluster.stop()
            self.disk.unmount()

    # -- the verifier -------------------------------------------------------------------
    async def _worker_clock(self) -> float | None:
        """The lowest detection clock (epoch s) over the running workers' partitions."""
        lowest: float | None = None
        for worker in self.workers:
            if not worker.running():
                continue
            try:
                text = await worker.metrics()
            except Exception:  # restarting: ask again
                return None
            for line in text.splitlines():
                if line.startswith("waybill_watch_clock_seconds{"):
                    value = float(line.rsplit(" ", 1)[1])
                    lowest = value if lowest is None else min(lowest, value)
        return lowest

    async def verify(self) -> dict[str, Any]:
        s = self.s
        assert self.load is not None
        results = self.load.results
        dues = [p.push.due for p in results if p.push.due is not None]
        wait = max(dues, default=0) + 5 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        group = f"{s.prefix}waybill-watch"
        raw_topic = f"{s.prefix}tracking.raw"
        began = time.monotonic()
        while True:
            lag = await group_lag(self.bootstrap, group, raw_topic)
            if lag == 0:
                break
            if time.monotonic() - began > 240:
                raise TimeoutError(f"the group still lags {lag} on tracking.raw")
            await asyncio.sleep(1)
        # The deadlines fire when the worker's detection clock passes them, not the wall
        # clock: after a restart, or on a loaded machine, it may trail by many seconds (CI saw
        # 2 of 16 unfired 12 s after the last one was due). Wait for the clock itself.
        last_due = max(dues, default=0) + 1
        clock = await self._worker_clock()
        while clock is None or clock < last_due:
            if time.monotonic() - began > 240:
                s.log(f"the workers' clock ({clock}) has not passed the last deadline")
                break
            await asyncio.sleep(1)
            clock = await self._worker_clock()
        await asyncio.sleep(4)
        until = datetime.now(UTC).replace(microsecond=0)
        await asyncio.sleep(3)
        s.log(f"caught up; verifying (replay until {until.isoformat()})")

        raw = await read_all(self.bootstrap, raw_topic, committed=False, settle=3)
        capture = s.out / "raw.jsonl"
        capture.write_bytes(b"".join(r.value + b"\n" for r in raw))
        replayed = s.out / "replay.jsonl"
        env = {
            k: v for k, v in __import__("os").environ.items() if not k.startswith("WAYBILL_WATCH_")
        }
        env["WAYBILL_WATCH_KDNIAO_APP_KEY"] = APP_KEY
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "waybill_watch",
                "replay",
                str(capture),
                "--out",
                str(replayed),
                "--until",
                until.isoformat(),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"replay failed: {done.stderr[-2000:]}")
        s.notes.append("replay: " + done.stderr.strip().replace("\n", "; "))
        expected = Counter(
            _key(orjson.loads(line)) for line in replayed.read_bytes().splitlines() if line
        )
        scans = _replay_scans(raw, until)

        def all_anomalies(records: list[Any]) -> bool:
            live = Counter(_key(orjson.loads(r.value)) for r in records)
            return all(live[k] >= n for k, n in expected.items())

        def all_scans(records: list[Any]) -> bool:
            return {orjson.loads(r.value)["event_id"] for r in records} >= set(scans)

        anomalies, events, dlq = await asyncio.gather(
            read_all(self.bootstrap, f"{s.prefix}anomalies", complete=all_anomalies),
            read_all(self.bootstrap, f"{s.prefix}tracking.events", complete=all_scans),
            read_all(
                self.bootstrap,
                f"{s.prefix}tracking.dlq",
                complete=lambda rs: len(rs) >= len(self.malformed),
            ),
        )
        data = {
            "raw": raw,
            "expected": expected,
            "scans": scans,
            "anomalies": [orjson.loads(r.value) for r in anomalies],
            "events": [orjson.loads(r.value) for r in events],
            "dlq": [orjson.loads(r.value) for r in dlq],
        }
        return self.report(data, self.checks(data))

    def checks(self, d: dict[str, Any]) -> dict[str, dict[str, Any]]:
        s = self.s
        assert self.load is not None
        results = self.load.results
        accepted = [r for r in results if r.accepted]
        checks: dict[str, dict[str, Any]] = {}

        # every accepted push is on tracking.raw
        bodies: Counter[str] = Counter()
        for record in d["raw"]:
            with contextlib.suppress(Exception):
                bodies[orjson.loads(record.value)["body"]] += 1
        missing_raw = [r.push.id for r in accepted if r.push.body.decode() not in bodies]
        checks["accepted_on_raw"] = {
            "ok": not missing_raw,
            "accepted": len(accepted),
            "raw_records": len(d["raw"]),
            "missing": len(missing_raw),
        }

        # scans: exactly replay's, each once; every accepted push's trace in full
        expected_scans: dict[str, str] = d["scans"]
        live = Counter(e["event_id"] for e in d["events"])
        by_waybill: dict[str, set[str]] = {}
        for e in d["events"]:
            by_waybill.setdefault(e["waybill"], set()).add(e["event_id"])
        missing = [e for e in expected_scans if live[e] == 0]
        extra = [e for e in live if e not in expected_scans]
        dups = sum(n - 1 for n in live.values() if n > 1)
        short = [
            r.push.id for r in accepted if len(by_waybill.get(r.push.waybill, ())) < r.push.traces
        ]
        checks["scans_exactly_once"] = {
            "ok": not missing and not extra and not dups and not short,
            "expected": len(expected_scans),
            "records": len(d["events"]),
            "missing": len(missing),
            "extra": len(extra),
            "duplicates": dups,
            "accepted_pushes_incomplete": len(short),
        }

        # anomalies: replay's multiset, none opened twice
        expected: Counter[tuple[str, str, str]] = d["expected"]
        got = Counter(_key(a) for a in d["anomalies"])
        a_missing = {k: n - got[k] for k, n in expected.items() if got[k] < n}
        a_extra = {k: n - expected[k] for k, n in got.items() if n > expected[k]}
        opens = Counter(a["anomaly_id"] for a in d["anomalies"] if a["status"] == "open")
        twice = [k for k, n in opens.items() if n > 1]
        checks["anomalies_match_replay"] = {
            "ok": not a_missing and not a_extra and not twice and expected.total() > 0,
            "expected": expected.total(),
            "records": got.total(),
            "missing": sum(a_missing.values()),
            "extra": sum(a_extra.values()),
            "opened_twice": len(twice),
            "by_type": dict(Counter(k[1] for k in got.elements())),
            "missing_sample": [list(k) for k in list(a_missing)[:5]],
            "extra_sample": [list(k) for k in list(a_extra)[:5]],
        }

        # deadlines: each deadline waybill's stall opened, those due in a kill window too
        stalls = {
            a["waybill"]
            for a in d["anomalies"]
            if a["type"] == "transit_stall" and a["status"] == "open"
        }
        deadline = {r.push.waybill: r.push.due for r in accepted if r.push.due is not None}
        windows = [(w.began, w.ended or time.time()) for w in s.windows]
        in_window = {w for w, due in deadline.items() if any(a <= due <= b for a, b in windows)}
        not_fired = [w for w in deadline if w not in stalls]
        checks["deadlines_fired"] = {
            "ok": not not_fired and bool(in_window),
            "deadline_waybills": len(deadline),
            "due_in_a_fault_window": len(in_window),
            "fired": len(deadline) - len(not_fired),
            "not_fired": len(not_fired),
            "in_window_not_fired": len([w for w in in_window if w not in stalls]),
        }

        # DLQ: exactly the malformed records
        def payload(rec: dict[str, Any]) -> bytes:
            if rec.get("payload_encoding") == "base64":
                return base64.b64decode(rec["payload"])
            return str(rec["payload"]).encode()

        dlq = Counter(payload(r) for r in d["dlq"])
        sent = Counter(self.malformed)
        checks["dlq_exact"] = {
            "ok": dlq == sent,
            "sent_malformed": sent.total(),
            "dlq_records": dlq.total(),
            "missing": (sent - dlq).total(),
            "extra": (dlq - sent).total(),
            "reasons": dict(Counter(r.get("reason") for r in d["dlq"])),
        }

        # the couriers' retries
        gave_up = [r for r in results if r.gave_up]
        statuses = Counter(a.status for r in results for a in r.attempts)
        checks["retries_succeeded"] = {
            "ok": not gave_up,
            "pushes": len(results),
            "accepted": len(accepted),
            "gave_up": len(gave_up),
            "retried": sum(1 for r in results if len(r.attempts) > 1),
            "attempt_statuses": dict(statuses),
        }
        if s.outage is not None:
            down, back = s.outage
            during = [a for r in results for a in r.attempts if down + 1 <= a.started < back]
            n503 = sum(1 for a in during if a.status == "503")
            ok_while_down = sum(1 for a in during if a.status == "200" and a.finished < back)
            checks["ingest_503_while_broker_down"] = {
                "ok": n503 > 0 and ok_while_down == 0,
                "attempts_while_down": len(during),
                "answered_503": n503,
                "answered_200_while_down": ok_while_down,
                "statuses": dict(Counter(a.status for a in during)),
            }
        recoveries = [w.recovery_s for w in s.windows if w.recovery_s is not None]
        checks["workers_recovered"] = {
            "ok": not s.errors and len(recoveries) >= s.kills,
            "faults": len(s.windows),
            "recovery_s_max": round(max(recoveries, default=0), 1),
            "recovery_s_median": round(sorted(recoveries)[len(recoveries) // 2], 1)
            if recoveries
            else None,
            "self_exits": {p.name: len(p.self_exits) for p in self.workers + self.ingests},
            # exits nobody asked for, by their last error line; engines the workers replaced
            # in-process after a Kafka error instead of exiting (worker/restarts.py)
            "self_exit_errors": dict(
                Counter(e[2][:100] for p in self.workers + self.ingests for e in p.self_exits)
            ),
            "engines_replaced_in_process": sum(
                _log_count(w.log_path, ENGINE_REPLACED) for w in self.workers
            ),
        }
        return checks

    def report(self, data: dict[str, Any], checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        s = self.s
        results = self.load.results if self.load is not None else []
        ok = bool(checks) and all(c["ok"] for c in checks.values()) and not s.errors
        passed = sum(1 for c in checks.values() if c["ok"])
        anomalies = checks.get("anomalies_match_replay", {})
        scans = checks.get("scans_exactly_once", {})
        summary = (
            f"FAULTS {'ok' if ok else 'FAILED'} mode={'quick' if s.quick else 'long'} "
            f"checks={passed}/{len(checks)} "
            f"pushes_accepted={sum(1 for r in results if r.accepted)}/{len(results)} "
            f"kills={s.kills} broker_outages={s.broker_outages} disk_faults={s.disk_faults} "
            f"anomalies={anomalies.get('records', 0)}/{anomalies.get('expected', 0)} "
            f"scans={scans.get('records', 0)}/{scans.get('expected', 0)} "
            f"dlq={checks.get('dlq_exact', {}).get('dlq_records', 0)}/{len(self.malformed)} "
            f"deadlines_in_fault_windows="
            f"{checks.get('deadlines_fired', {}).get('due_in_a_fault_window', 0)} "
            f"seconds={time.monotonic() - s.began:.0f}"
        )
        if not ok:
            failed = [name for name, c in checks.items() if not c["ok"]]
            summary += f" failed={','.join(failed) or 'run'}"
        report = {
            "ok": ok,
            "summary": summary,
            "run": s.run,
            "prefix": s.prefix,
            "mode": "quick" if s.quick else "long",
            "bootstrap": self.bootstrap,
            "rate": self.rate,
            "checks": checks,
            "errors": s.errors,
            "notes": s.notes,
            "windows": [w.__dict__ for w in s.windows],
            "timeline": s.timeline,
        }
        write_report(s.out, report)
        return report


def _io_errors(log_path: Path, mark: int) -> int:
    """Lines after byte ``mark`` of a worker log that name a disk error. quix-streams reports
    any RocksDB "IO error" at open as "cannot acquire a lock" (and retries), so those count,
    as do the worker's own lines naming its data dir (worker/datadir.py)."""
    with log_path.open("rb") as log:
        log.seek(mark)
        text = log.read().decode(errors="replace")
    needles = ("No space left", "Read-only file system", "IO error", "acquire a lock", "data dir")
    return sum(1 for line in text.splitlines() if any(s in line for s in needles))


#: What a worker logs when it replaced its engine after a Kafka error (worker/restarts.py).
ENGINE_REPLACED = "replacing it in this process"


def _log_count(log_path: Path, needle: str) -> int:
    """Lines of a log that contain ``needle``."""
    if not log_path.exists():
        return 0
    text = log_path.read_bytes().decode(errors="replace")
    return sum(1 for line in text.splitlines() if needle in line)


def _key(event: dict[str, Any]) -> tuple[str, str, str]:
    return (event["anomaly_id"], event["type"], event["status"])


def _replay_scans(raw: list[Any], until: datetime) -> dict[str, str]:
    """event_id → waybill of every scan replay forwards to ``tracking.events``."""
    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)), until=until)
    scans: dict[str, str] = {}
    effects = replay.waybill_ports.effects
    forward = effects.scans

    def record(key: str, new: list[Any]) -> None:
        for scan in new:
            scans[scan.event_id] = key
        forward(key, new)

    effects.scans = record  # type: ignore[method-assign,assignment]
    replay.run(r.value for r in raw)
    return scans


def main(quick: bool, out: Path | None, rate: float | None, seed: int) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (out or ROOT / ".run" / "faults" / f"{stamp}{'-quick' if quick else ''}").resolve()
    report = asyncio.run(Harness(quick, out, rate, seed).run())
    print(f"report: {out / 'report.md'}")
    print(report["summary"], flush=True)
    return 0 if report["ok"] else 1
