"""Stream engines on the same records and the same broker: a bare aiokafka loop, quix-streams,
faust-streaming (issue 8: the evidence for moving the worker from Faust to quix-streams).

20 000 envelopes (``--quick``: 3 000), evenly sampled from the simulated Kdniao + merchant
capture that ``benchmarks replay --quick`` uses (2 000 waybills, seed 7), are preloaded once on a
fresh ``tracking.raw`` of 8 partitions. Each contender then runs in its own child process with a
fresh consumer group from the earliest offset and does, per record, the same ``summarize``:
envelope JSON, its body (Kdniao: the form by ``feeds.common.read_form`` + ``RequestData`` JSON;
merchant: JSON), the first waybill. Contenders with output produce one small JSON record per
envelope, keyed by waybill, acks=all, onto a fresh 8-partition topic.

Timing: from the child's first record (it writes ``time.time()``, its CPU time and the broker's
to a marker file) to the first poll (every 50 ms) at which the group's committed offsets reach
the end of its input topics and the output topic holds one record per envelope
(``kafka_capture``). Every engine commits every ``COMMIT_INTERVAL`` s (quix defaults to 5 s,
Faust to 2.8 s: a whole run would fit in one commit), so each pays the same small tail and its
commit work. CPU: the child's (all threads, ``/proc/<pid>/stat``) and the broker JVM's over that
window; ``total`` adds the child's start-up and shutdown (``os.wait4``).
Start-up: process spawn to first record.

On a shared machine other work only slows a contender down, so the full run measures each one
``ROUNDS`` times, rounds interleaved, and reports its fastest round (``--quick``: one round).
Compare rows of the same run; the CPU columns vary less than the rates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.kafka_capture import bench_kafka, create_topic, preload, read_capture, wait_lag_zero
from benchmarks.replay_bench import ROOT, _capture
from waybill_watch.feeds.common import read_form

PARTITIONS = 8
COMMIT_INTERVAL = 0.2  # seconds, every engine
ROUNDS = 3  # full run: each contender 3 times, interleaved; the fastest counts (shared machine)
CAPTURE_WAYBILLS = 2_000  # the replay --quick capture: 23 278 envelopes
FAUST_HINT = "skipped: pip install faust-streaming==0.15.3 to include"


def summarize(value: bytes) -> dict[str, Any]:
    """The per-record work every contender does: decode the envelope and its body."""
    envelope = orjson.loads(value)
    if envelope["feed"] == "kdniao":
        body = orjson.loads(read_form(envelope["body"])["RequestData"].value)
        waybill = body["Data"][0]["LogisticCode"]
    else:
        body = orjson.loads(envelope["body"])
        waybill = (body[0] if isinstance(body, list) else body)["waybill"]
    return {"waybill": waybill, "feed": envelope["feed"], "received_at": envelope["received_at"]}


# --- the contenders (each runs in its own child process) -------------------------------------


@dataclass(frozen=True)
class Job:
    bootstrap: str
    source: str
    sink: str
    group: str
    workdir: str
    broker_pid: int | None  # the local broker JVM, for its CPU

    def marker(self) -> Callable[[], None]:
        """Call on every record: the first call writes the wall time, this process's CPU time
        and the broker's (0 when unknown) to the file ``first``."""
        path, done = Path(self.workdir) / "first", False

        def mark() -> None:
            nonlocal done
            if not done:
                done = True
                broker = proc_cpu(self.broker_pid) if self.broker_pid else 0.0
                path.with_suffix(".tmp").write_text(f"{time.time()} {time.process_time()} {broker}")
                path.with_suffix(".tmp").replace(path)

        return mark


def run_bare(job: Job) -> None:
    """getmany → summarize → send (acks=all, idempotent); commit once the sends are acked."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def loop() -> None:
        mark = job.marker()
        consumer = AIOKafkaConsumer(
            job.source,
            bootstrap_servers=job.bootstrap,
            group_id=job.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=job.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await consumer.start()
        await producer.start()
        pending: list[asyncio.Future[Any]] = []
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=50)).values():
                    for record in records:
                        mark()
                        out = summarize(record.value)
                        key, value = out["waybill"].encode(), orjson.dumps(out)
                        pending.append(await producer.send(job.sink, value, key=key))
                if pending and time.monotonic() - last_commit >= COMMIT_INTERVAL:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await consumer.commit()
                    last_commit = time.monotonic()
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(loop())


def run_quix(job: Job, *, stateful: bool) -> None:
    """``apply(summarize).to_topic``; stateful: ``group_by("waybill")`` and a per-waybill count
    in RocksDB state (changelogged) between them."""
    from quixstreams import Application

    app = Application(
        broker_address=job.bootstrap,
        consumer_group=job.group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL,
        # The loop looks at the commit timer only between polls; idle, the default 1 s poll
        # would hold the last commit back by up to 1 s (the bare loop polls for 50 ms).
        consumer_poll_timeout=0.05,
        state_dir=str(Path(job.workdir) / "state"),
        loglevel="WARNING",
    )
    source = app.topic(job.source, value_deserializer="bytes")
    sink = app.topic(job.sink, key_serializer="str", value_serializer="json")
    mark = job.marker()

    def decode(value: bytes) -> dict[str, Any]:
        mark()
        return summarize(value)

    sdf = app.dataframe(source).apply(decode)
    if stateful:

        def count(value: dict[str, Any], state: Any) -> dict[str, Any]:
            seen = state.get("seen", 0) + 1
            state.set("seen", seen)
            return {**value, "seen": seen}

        sdf = sdf.group_by("waybill").apply(count, stateful=True)
    sdf.to_topic(sink, key=lambda value: value["waybill"])
    app.run()


def run_faust(job: Job, *, send: bool) -> None:
    """One agent: ``async for value in stream: summarize`` (+ ``await sink.send``)."""
    import faust

    app = faust.App(
        job.group,
        broker=f"kafka://{job.bootstrap}",
        store="memory://",
        datadir=str(Path(job.workdir) / "faust"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=COMMIT_INTERVAL,
    )
    source = app.topic(job.source, key_serializer="raw", value_serializer="raw")
    sink = app.topic(job.sink, key_serializer="raw", value_serializer="raw")
    mark = job.marker()

    @app.agent(source)
    async def agent(stream: Any) -> None:
        async for value in stream:
            mark()
            out = summarize(value)
            if send:
                await sink.send(key=out["waybill"].encode(), value=orjson.dumps(out))

    faust.Worker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()


@dataclass(frozen=True)
class Contender:
    label: str
    run: Callable[[Job], None]
    output: bool = True
    faust: bool = False
    repartition: str | None = None  # group_by topic, whose lag counts too


CONTENDERS = {
    "bare": Contender("bare aiokafka loop: decode + produce", run_bare),
    "quix": Contender("quix-streams: decode + produce", lambda j: run_quix(j, stateful=False)),
    "quix-state": Contender(
        "quix-streams: + group_by + state + changelog",
        lambda j: run_quix(j, stateful=True),
        repartition="waybill",
    ),
    "faust": Contender(
        "faust agent: decode, no output",
        lambda j: run_faust(j, send=False),
        output=False,
        faust=True,
    ),
    "faust-send": Contender(
        "faust agent: decode + topic.send", lambda j: run_faust(j, send=True), faust=True
    ),
}


# --- the parent: broker, preload, one child per contender, the table ------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    rate: float | None = None
    seconds: float = 0.0
    startup: float = 0.0
    cpu: float = 0.0
    total_cpu: float = 0.0
    broker_cpu: float | None = None
    note: str = ""


def _measure(
    name: str, bootstrap: str, source: str, n: int, prefix: str, broker_pid: int | None
) -> Result:
    contender = CONTENDERS[name]
    with tempfile.TemporaryDirectory(prefix=f"wbw-engines-{name}-") as workdir:
        job = Job(bootstrap, source, f"{prefix}out-{name}", f"{prefix}{name}", workdir, broker_pid)
        asyncio.run(create_topic(bootstrap, job.sink, PARTITIONS))
        argv = [sys.executable, "-m", "benchmarks.engines_bench", "--child", name]
        log_path = Path(workdir) / "child.log"
        spawned = time.time()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*argv, json.dumps(asdict(job))], cwd=ROOT, stdout=log, stderr=log
            )

        def check() -> None:
            if proc.poll() is not None:
                log_tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited {proc.returncode}:\n{log_tail}")

        topics = [source]
        if contender.repartition:  # quix names it repartition__<group>--<topic>--<name>
            topics.append(f"repartition__{job.group}--{source}--{contender.repartition}")
        outputs = {job.sink: n} if contender.output else None
        try:
            done = asyncio.run(
                wait_lag_zero(
                    bootstrap, job.group, topics, outputs=outputs, timeout=60 + n / 100, check=check
                )
            )
            cpu_done = proc_cpu(proc.pid)
            broker_done = proc_cpu(broker_pid) if broker_pid else None
        finally:
            proc.send_signal(signal.SIGTERM)
            total_cpu = _reap(proc)
        wall, cpu, broker_start = map(float, (Path(workdir) / "first").read_text().split())
        return Result(
            contender.label,
            rate=n / (done - wall),
            seconds=done - wall,
            startup=wall - spawned,
            cpu=cpu_done - cpu,
            total_cpu=total_cpu,
            broker_cpu=None if broker_done is None else broker_done - broker_start,
        )


def _reap(proc: subprocess.Popen[bytes], grace: float = 30.0) -> float:
    """Wait for the signalled child (SIGKILL after ``grace`` s); its CPU seconds in all."""
    deadline = time.monotonic() + grace
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.05)


def _faust_importable() -> bool:
    check = subprocess.run([sys.executable, "-c", "import faust"], capture_output=True)
    return check.returncode == 0


def _print_table(results: list[Result]) -> None:
    bare = results[0].rate
    print(
        "| contender | envelopes/s | ratio to bare | seconds | child CPU s (total) | broker CPU s "
        "| start-up s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        if r.rate is None:
            print(f"| {r.label} | {r.note} | | | | | |")
            continue
        ratio = f"{r.rate / bare:.2f}" if bare else "-"
        broker = "-" if r.broker_cpu is None else f"{r.broker_cpu:.1f}"
        print(
            f"| {r.label} | {r.rate:,.0f} | {ratio} | {r.seconds:.2f} | "
            f"{r.cpu:.1f} ({r.total_cpu:.1f}) | {broker} | {r.startup:.1f} |"
        )
    sys.stdout.flush()


def main(quick: bool = False) -> int:
    n, rounds = (3_000, 1) if quick else (20_000, ROUNDS)
    command = ".venv/bin/python -m benchmarks engines" + (" --quick" if quick else "")
    capture = _capture(CAPTURE_WAYBILLS)
    lines = read_capture(capture.path)
    envelopes = [lines[i * len(lines) // n] for i in range(n)]
    size = sum(map(len, envelopes))
    print(
        f"{n} envelopes ({size / 1e6:.1f} MB) evenly sampled from {capture.envelopes} of "
        f"{capture.path.relative_to(ROOT)} ({capture.note}); {PARTITIONS} partitions, commit "
        f"every {COMMIT_INTERVAL} s; {os.cpu_count()} cores shared with the broker, load "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    bootstrap, broker = bench_kafka()
    try:
        prefix = f"engines{uuid.uuid4().hex[:8]}."
        source = f"{prefix}tracking.raw"
        started = time.perf_counter()
        asyncio.run(preload(bootstrap, source, envelopes, partitions=PARTITIONS))
        print(f"preloaded {source} in {time.perf_counter() - started:.1f} s", flush=True)
        faust = _faust_importable()
        best: dict[str, Result] = {}  # the fastest round of each contender
        for round_ in range(rounds):
            for name, contender in CONTENDERS.items():
                if contender.faust and not faust:
                    best[name] = Result(contender.label, note=FAUST_HINT)
                    continue
                pid = broker.pid if broker else None
                r = _measure(name, bootstrap, source, n, f"{prefix}r{round_}.", pid)
                print(f"  round {round_ + 1}: {r.label}: {r.rate:,.0f}/s", flush=True)
                if name not in best or (r.rate or 0) > (best[name].rate or 0):
                    best[name] = r
    finally:
        if broker is not None:
            broker.stop()
    if rounds > 1:
        print(f"best of {rounds} rounds per contender (rounds interleaved):")
    _print_table(list(best.values()))
    print(f"repeat: {command}   (load now {os.getloadavg()[0]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        CONTENDERS[sys.argv[2]].run(Job(**json.loads(sys.argv[3])))
    else:
        sys.exit(main(quick="--quick" in sys.argv))
