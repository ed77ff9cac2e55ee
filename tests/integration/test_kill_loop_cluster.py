"""Kill loop on a 3-node cluster: workers SIGKILLed again and again (and one broker once)
still emit exactly replay's anomalies.

The Kafka Streams EOS system test, scaled down (peers-and-style §3.1/§3.2). A capture is
preloaded on a one-partition ``tracking.raw`` (replication 3, as every topic here) and a
worker on the ``stream`` clock works through it while a nemesis SIGKILLs it at random moments,
restarts it, and waits until it processes again before the next kill; like a supervisor, it
also restarts a worker that exits on its own (reported, and bounded). Twice the worker comes
back with its RocksDB files gone (its state is restored from the changelogs only). Once during
the loop a broker is SIGKILLed, and restarted a few worker kills later.

One worker per processing guarantee runs this loop, both at once on the same cluster (they
share the broker kill): run one after the other they would not fit the suite's time budget.

Then a verifier reads every output topic from the start (``read_committed`` under
exactly-once) and compares with ``waybill-watch replay`` of the same capture, as multisets
(replay itself emits some (anomaly_id, type, status) twice, e.g. two ``updated``):

* every anomaly event replay emits is on ``anomalies`` (missing: fewer copies than replay),
  none is extra (an (anomaly_id, type, status) replay never emits); at-least-once may repeat
  events (duplicates: copies beyond replay's, counted and reported), exactly-once may not;
* every scan replay forwards is on ``tracking.events`` at least once (exactly as often as
  replay forwards it under exactly-once), and no other scan is.

Each guarantee prints a summary line (``KILL-LOOP ...``; ``pytest -s`` shows them and the
nemesis' progress) with the measured numbers.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from waybill_watch.devbroker import BrokerError, LocalCluster
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.ops import metric_sum
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

from .captures import UNSIGNED, AnomalyKey, anomaly_key, preload, run_cli, simulate_capture
from .conftest import RunningWorker, spawn_process

pytestmark = pytest.mark.integration

GUARANTEES = ("exactly-once", "at-least-once")
WAYBILLS = 300
SEED = 5
KILLS = 10
#: The broker dies once both workers were killed this often, and is back after this many or
#: after ``BROKER_DOWN_MAX_S``, whichever comes first (a worker restarted meanwhile may take a
#: while to start: its metadata requests time out against the dead node; without the bound one
#: slow restart held the broker down for both loops until the recovery timeout).
BROKER_DOWN_AFTER, BROKER_BACK_AFTER = 3, 6
BROKER_DOWN_MAX_S = 40.0
#: Kills after which the worker restarts without its RocksDB files.
FRESH_DISK_AT = (2, 7)
PARTITIONS = "2"
RECOVERY_TIMEOUT_S = 120.0
#: Exits on its own a loop tolerates (restarting, as a supervisor would) before it fails.
MAX_SELF_EXITS = 3
SETTLE_S = 6.0


@dataclass
class Expected:
    """What ``waybill-watch replay`` makes of the capture."""

    lines: list[bytes]
    anomalies: Counter[AnomalyKey]
    scans: Counter[str]


@dataclass
class Run:
    """One guarantee's worker under the nemesis, and what the verifier read afterwards."""

    guarantee: str
    prefix: str
    kills: int = 0
    recoveries: list[float] = field(default_factory=list)
    raw_done_at_kill: int | None = None
    #: Exits the nemesis did not cause: exit code and the last error line of the log.
    self_exits: list[str] = field(default_factory=list)
    error: str | None = None
    began: float = 0.0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def eos(self) -> bool:
        return self.guarantee == "exactly-once"

    def recovery_text(self) -> str:
        r = sorted(self.recoveries)
        if not r:
            return "recovery n/a"
        return (
            f"recovery_s min={r[0]:.1f} median={r[len(r) // 2]:.1f} max={r[-1]:.1f} "
            f"mean={sum(r) / len(r):.1f}"
        )


@dataclass
class Outcome:
    runs: dict[str, Run]
    broker: str
    seconds: float


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    nodes = LocalCluster()
    try:
        nodes.start()
    except BrokerError as exc:
        pytest.fail(f"the 3-node cluster did not start: {exc}", pytrace=False)
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    """The capture and what the replay CLI (anomalies) and an in-process replay with the same
    settings (forwarded scans, which the CLI does not write) make of it."""
    workdir = tmp_path_factory.mktemp("capture")
    capture, out = workdir / "capture.jsonl", workdir / "replay.jsonl"
    lines = simulate_capture(capture, waybills=WAYBILLS, seed=SEED)
    run_cli("replay", str(capture), "--out", str(out))
    anomalies = Counter(
        anomaly_key(orjson.loads(line)) for line in out.read_bytes().splitlines() if line
    )

    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    scans: Counter[str] = Counter()
    effects = replay.waybill_ports.effects
    forward = effects.scans

    def record(key: str, new: list[Any]) -> None:
        scans.update(scan.event_id for scan in new)
        forward(key, new)

    effects.scans = record  # type: ignore[method-assign,assignment]
    replay.run(lines)
    assert (
        Counter(anomaly_key(orjson.loads(e.model_dump_json())) for e in replay.anomalies)
        == anomalies
    )
    assert len(anomalies) >= 20 and len(scans) >= 1000, (len(anomalies), len(scans))
    return Expected(lines, anomalies, scans)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def outcome(
    cluster: LocalCluster, expected: Expected, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outcome]:
    """Both kill loops, at once, and what the verifier read for each."""
    began = time.monotonic()
    workdir = tmp_path_factory.mktemp("kill-loop")
    tag = workdir.name[-4:].replace("_", "")
    runs = {g: Run(g, f"kl{'eos' if g == 'exactly-once' else 'alo'}{tag}.") for g in GUARANTEES}
    await asyncio.gather(
        *(
            preload(cluster.bootstrap, f"{r.prefix}tracking.raw", expected.lines, replication=3)
            for r in runs.values()
        )
    )
    killed = asyncio.Condition()
    broker = BrokerNemesis(cluster, random.Random(SEED), list(runs.values()), killed, began)
    nemesis = asyncio.create_task(broker.run())
    await asyncio.gather(
        *(_kill_loop(run, cluster, expected, workdir, killed, began) for run in runs.values())
    )
    await nemesis
    yield Outcome(runs, broker.report, time.monotonic() - began)


# -- the nemesis ------------------------------------------------------------------------------


class BrokerNemesis:
    """SIGKILLs one broker once every worker was killed ``BROKER_DOWN_AFTER`` times (it dies
    under running or recovering workers) and restarts it after ``BROKER_BACK_AFTER`` (at most
    ``BROKER_DOWN_MAX_S`` later)."""

    def __init__(
        self,
        cluster: LocalCluster,
        rng: random.Random,
        runs: list[Run],
        killed: asyncio.Condition,
        began: float,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.runs = runs
        self.killed = killed
        self.began = began
        self.report = "no broker killed"

    async def run(self) -> None:
        index = self.rng.randrange(self.cluster.size)
        await self._until(lambda: all(r.kills >= BROKER_DOWN_AFTER or r.error for r in self.runs))
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        self.cluster.kill(index)
        killed = time.monotonic()
        _progress(self.began, f"broker node {index + 1} killed")
        back = self._until(lambda: all(r.kills >= BROKER_BACK_AFTER or r.error for r in self.runs))
        try:
            await asyncio.wait_for(back, BROKER_DOWN_MAX_S)
        except TimeoutError:
            _progress(self.began, f"broker node {index + 1} down {BROKER_DOWN_MAX_S:.0f} s")
        await asyncio.to_thread(self.cluster.restart, index)
        _progress(self.began, f"broker node {index + 1} back")
        self.report = f"node {index + 1} down {time.monotonic() - killed:.0f} s"

    async def _until(self, condition: Callable[[], bool]) -> None:
        async with self.killed:
            await self.killed.wait_for(condition)


async def _kill_loop(
    run: Run,
    cluster: LocalCluster,
    expected: Expected,
    workdir: Path,
    killed: asyncio.Condition,
    began: float,
) -> None:
    """Kill and restart one worker ``KILLS`` times, then read its outputs; a failure is kept
    in ``run.error`` so the other guarantee's loop still finishes."""
    rng = random.Random(f"{SEED}-{run.guarantee}")
    run.began = began
    bootstrap = cluster.bootstrap
    worker = spawn_process(
        bootstrap,
        workdir,
        run.guarantee,
        prefix=run.prefix,
        WAYBILL_WATCH_CLOCK="stream",
        WAYBILL_WATCH_RAW_PARTITIONS="1",
        WAYBILL_WATCH_PARTITIONS=PARTITIONS,
        WAYBILL_WATCH_REPLICATION_FACTOR="3",
        WAYBILL_WATCH_PROCESSING_GUARANTEE=run.guarantee,
        # The restart joins once the group dropped the killed process (broker minimum: 6 s).
        WAYBILL_WATCH_SESSION_TIMEOUT_SECONDS="6",
        **UNSIGNED,
    )
    # The RocksDB files; the data dir's instance id stays (the same worker, its disk wiped).
    state_dir = Path(worker.env["WAYBILL_WATCH_DATA_DIR"]) / f"{run.prefix}waybill-watch"
    lag = Lag(bootstrap, run.prefix + "waybill-watch", f"{run.prefix}tracking.raw")
    name = run.guarantee
    try:
        started = time.monotonic()
        while run.kills < KILLS:
            run.recoveries.append(await _processing(worker, lag, started, run))
            _progress(began, f"{name}: processing {run.recoveries[-1]:.1f} s after (re)start")
            await asyncio.sleep(rng.uniform(0.3, 2.5))
            code = worker.stop(signal.SIGKILL)
            if code != -signal.SIGKILL:  # it had exited by itself meanwhile
                _self_exit(run, worker, code)
                started = time.monotonic()
                worker.start()
                continue
            run.kills += 1
            async with killed:
                killed.notify_all()
            _progress(began, f"{name}: kill {run.kills}")
            if run.raw_done_at_kill is None and await lag.raw_remaining() == 0:
                run.raw_done_at_kill = run.kills
            if run.kills in FRESH_DISK_AT:
                shutil.rmtree(state_dir, ignore_errors=True)
            started = time.monotonic()
            worker.start()
        run.recoveries.append(await _processing(worker, lag, started, run))
        _progress(began, f"{name}: processing {run.recoveries[-1]:.1f} s after the last restart")

        def all_anomalies(records: list[dict[str, Any]]) -> bool:
            live = Counter(anomaly_key(r) for r in records)
            return all(live[k] >= n for k, n in expected.anomalies.items())

        def all_scans(records: list[dict[str, Any]]) -> bool:
            return {r["event_id"] for r in records} >= set(expected.scans)

        run.anomalies, run.scans = await asyncio.gather(
            _read_all(bootstrap, f"{run.prefix}anomalies", run.eos, all_anomalies, timeout=90),
            _read_all(bootstrap, f"{run.prefix}tracking.events", run.eos, all_scans, timeout=90),
        )
        _progress(began, f"{name}: read {len(run.anomalies)} anomalies, {len(run.scans)} scans")
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}\nworker log:\n{worker.log_tail(40)}"
    finally:
        worker.stop()
        run.seconds = time.monotonic() - began
        async with killed:  # the broker nemesis stops waiting for a loop that ended
            killed.notify_all()


def _self_exit(run: Run, worker: RunningWorker, code: int) -> None:
    """Note an exit the nemesis did not cause; fail the loop once there are too many."""
    errors = [
        line
        for line in worker.log_tail(200).splitlines()
        if line[:1].isalpha() and ("Error" in line or "Exception" in line)
    ]
    run.self_exits.append(f"exit {code}: {errors[-1][:300] if errors else '?'}")
    _progress(run.began, f"{run.guarantee}: worker exited by itself ({run.self_exits[-1]})")
    if len(run.self_exits) > MAX_SELF_EXITS:
        raise AssertionError(f"worker exited by itself {len(run.self_exits)} times")


# -- Kafka helpers ----------------------------------------------------------------------------


class Lag:
    """How far a worker's consumer group is on ``tracking.raw``."""

    def __init__(self, bootstrap: str, group: str, raw: str) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.raw = TopicPartition(raw, 0)

    async def raw_remaining(self) -> int | None:
        """Records of ``tracking.raw`` the group has not committed yet; None while the
        cluster cannot say (e.g. the group coordinator was on the broker just killed)."""
        try:
            return await asyncio.wait_for(self._raw_remaining(), 10)
        except Exception:
            return None

    async def _raw_remaining(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group)
            end = (await consumer.end_offsets([self.raw]))[self.raw]
        finally:
            await consumer.stop()
            await admin.close()
        meta = offsets.get(self.raw)
        committed = meta.offset if meta is not None and meta.offset >= 0 else 0
        return max(0, end - committed)


async def _processing(worker: RunningWorker, lag: Lag, started: float, run: Run) -> float:
    """Seconds from ``started`` until the new process processes: it normalised an envelope,
    or (once ``tracking.raw`` is all committed) its engine loop runs with partitions assigned
    (it ticks after recovering its state). A process that exits meanwhile is restarted."""
    deadline = started + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            _self_exit(run, worker, worker.proc.returncode)
            worker.start()
        try:
            text = await worker.metrics()
        except Exception:  # not listening yet
            text = ""
        if metric_sum(text, "waybill_watch_envelopes_normalized_total") > 0:
            return time.monotonic() - started
        assigned = metric_sum(text, "waybill_watch_partitions_assigned") > 0
        if assigned and await lag.raw_remaining() == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker not processing {RECOVERY_TIMEOUT_S:.0f} s after a restart")


async def _read_all(
    bootstrap: str,
    topic: str,
    committed: bool,
    complete: Callable[[list[dict[str, Any]]], bool],
    *,
    timeout: float,
) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the start until ``complete(records)`` holds (or
    ``timeout``), then ``SETTLE_S`` more seconds so late extras and repeats are seen too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < (settle_until or deadline):
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(orjson.loads(m.value) for m in messages)
            if settle_until is None and complete(records):
                settle_until = time.monotonic() + SETTLE_S
    finally:
        await consumer.stop()
    return records


def _progress(began: float, what: str) -> None:
    print(f"[{time.monotonic() - began:6.1f} s] {what}", flush=True)


# -- the verifier -----------------------------------------------------------------------------


@pytest.mark.timeout(480)
@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_kill_loop_on_a_cluster_matches_replay(
    guarantee: str, outcome: Outcome, expected: Expected
) -> None:
    run = outcome.runs[guarantee]
    live = Counter(anomaly_key(a) for a in run.anomalies)
    missing = {k: n - live[k] for k, n in expected.anomalies.items() if live[k] < n}
    extra = {k: n for k, n in live.items() if k not in expected.anomalies}
    duplicates = {
        k: n - expected.anomalies[k]
        for k, n in live.items()
        if k in expected.anomalies and n > expected.anomalies[k]
    }
    seen = Counter(s["event_id"] for s in run.scans)
    scans_missing = set(expected.scans) - set(seen)
    scans_extra = set(seen) - set(expected.scans)
    scans_over = {e: n - expected.scans[e] for e, n in seen.items() if n > expected.scans[e] > 0}

    summary = (
        f"KILL-LOOP {guarantee}: kills={run.kills} (broker {outcome.broker}; raw all "
        f"committed by kill {run.raw_done_at_kill}; exits by itself {len(run.self_exits)}) "
        f"{run.recovery_text()} | anomalies "
        f"expected={expected.anomalies.total()} records={len(run.anomalies)} "
        f"missing={sum(missing.values())} extra={sum(extra.values())} "
        f"duplicates={sum(duplicates.values())} | scans expected={expected.scans.total()} "
        f"records={len(run.scans)} missing={len(scans_missing)} extra={len(scans_extra)} "
        f"duplicates={sum(scans_over.values())} | loop {run.seconds:.0f} s, "
        f"both loops {outcome.seconds:.0f} s"
    )
    print(summary)
    detail = (
        f"{summary}\nmissing {sorted(missing.items())[:5]}\nextra {sorted(extra.items())[:5]}\n"
        f"duplicated {sorted(duplicates.items())[:5]}\nscans missing {sorted(scans_missing)[:5]} "
        f"extra {sorted(scans_extra)[:5]} duplicated {sorted(scans_over.items())[:5]}\n"
        f"exits by itself: {run.self_exits}"
    )
    for exit_ in run.self_exits:
        print(f"  {guarantee} worker exited by itself: {exit_}")
    assert run.error is None, f"{summary}\n{run.error}"
    assert run.kills >= KILLS, detail
    # A restart waits for the session timeout (6 s) and, under exactly-once, aborts the open
    # transaction of the killed process at once; waiting out transaction.timeout.ms (60 s)
    # or librdkafka's 45 s session would put the median far above this.
    median = sorted(run.recoveries)[len(run.recoveries) // 2]
    assert median < 30, detail
    assert not missing and not extra, detail
    assert not scans_missing and not scans_extra, detail
    if run.eos:
        assert not duplicates, detail
        assert not scans_over, detail
