"""``waybill-watch replay`` speed beside the bare cost of reading the same capture, same run.

A simulated Kdniao + merchant capture (``waybill-watch simulate``, seed 7: 20 000 waybills,
about 1.2 million scans; ``--quick`` 2 000 waybills, about 120 000) is generated once and kept
under ``.run/bench/``, keyed by its parameters and the simulator's source. Then, in one run:

(a) read every envelope line and ``orjson.loads`` it (the outer envelope only);
(b) the decode floor: (a), plus for each Kdniao push its form decoded by the feed's own
    ``read_form`` (``binascii.a2b_qp`` fast path, ``urllib.parse.unquote`` fallback) and its
    ``RequestData`` JSON loaded; no per-trace work. Every CPython replay spends at least this
    decoding the nested pushes, so replay / (a) cannot exceed (b)'s own ratio to (a);
(c) parse down to the scans: (b) plus every trace entry counted;
(d) ``waybill-watch replay CAPTURE --out FILE`` in a child process: wall time, its CPU time
    and peak RSS (``os.wait4`` on that child alone), the anomaly lines and their sha256
    (the same capture must give the same bytes on every run and every version);
(e) the same replay in this process, then ``len(WaybillState.to_bytes())`` of every waybill
    (what the worker stores per waybill in its table).

Scans are counted as trace entries of every push (a trace re-sent in ten pushes counts ten
times): the unit every speed shares. The figure is replay / (a); the aim is at least 1/3.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from waybill_watch.feeds.common import read_form
from waybill_watch.feeds.kdniao import FEED as KDNIAO
from waybill_watch.replay import Replay

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".run" / "bench"
SEED = 7
AIM = 1 / 3


@dataclass(frozen=True)
class Capture:
    path: Path
    envelopes: int
    size: int
    note: str


def _clean_env() -> dict[str, str]:
    """Contract defaults for simulate and replay alike: no WAYBILL_WATCH_* from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}


def _simulator_hash() -> str:
    digest = hashlib.sha256()
    for source in sorted((ROOT / "src" / "waybill_watch" / "simulate").glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


def _capture(waybills: int) -> Capture:
    """The capture for these parameters: reused when present, else generated (atomically)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"replay-w{waybills}-s{SEED}-{_simulator_hash()}.jsonl"
    note = "reused"
    for stale in CACHE.glob(f"replay-w{waybills}-s{SEED}-*"):
        if not stale.name.startswith(path.stem):  # made by another simulator version
            stale.unlink()
    if not path.exists():
        partial = path.with_suffix(".partial")
        labels = path.with_suffix(".labels.jsonl")
        argv = [sys.executable, "-m", "waybill_watch", "simulate", "--waybills", str(waybills)]
        argv += ["--seed", str(SEED), "--out", str(partial), "--labels", str(labels)]
        started = time.perf_counter()
        subprocess.run(argv, env=_clean_env(), check=True, stderr=subprocess.DEVNULL)
        partial.replace(path)
        note = f"generated in {time.perf_counter() - started:.1f} s"
    with path.open("rb") as handle:
        envelopes = sum(1 for line in handle if line.strip())
    return Capture(path, envelopes, path.stat().st_size, note)


def _bare_read(path: Path) -> float:
    """(a) Seconds to read and ``orjson.loads`` every envelope line."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return time.perf_counter() - started


def _kdniao_pushes(path: Path) -> Iterator[Any]:
    """Each Kdniao tracking push of the capture, decoded: envelope JSON, the form by the feed's
    own ``read_form``, ``RequestData`` JSON (the work (b) and (c) share)."""
    with path.open("rb") as handle:
        for line in handle:
            envelope = orjson.loads(line)
            if envelope["feed"] != KDNIAO:
                continue
            fields = read_form(envelope["body"])
            if fields["RequestType"].value.strip() not in ("101", "102"):
                continue
            yield orjson.loads(fields["RequestData"].value)


def _decode_floor(path: Path) -> float:
    """(b) Seconds to decode every envelope and the Kdniao pushes inside them: (c) without its
    per-trace loop, so the gap (b) to (c) is that loop alone."""
    started = time.perf_counter()
    for _ in _kdniao_pushes(path):
        pass
    return time.perf_counter() - started


def _bare_parse(path: Path) -> tuple[float, int]:
    """(c) Seconds to parse down to the scans, and how many scans (trace entries) there are."""
    scans = 0
    started = time.perf_counter()
    for push in _kdniao_pushes(path):
        for item in push["Data"]:
            scans += len(item.get("Traces") or ())
    return time.perf_counter() - started, scans


@dataclass(frozen=True)
class ChildRun:
    wall: float
    cpu: float
    peak_rss_kb: int
    anomalies: int
    sha256: str
    summary: str


def _replay_child(path: Path) -> ChildRun:
    """(d) ``waybill-watch replay`` as a separate process, measured on its own."""
    with tempfile.TemporaryDirectory(prefix="wbw-bench-") as tmp:
        out, err = Path(tmp) / "anomalies.jsonl", Path(tmp) / "stderr.txt"
        argv = [sys.executable, "-m", "waybill_watch", "replay", str(path), "--out", str(out)]
        with err.open("wb") as stderr:
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=stderr
            )
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
            wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        summary = err.read_text(errors="replace").strip()
        if proc.returncode != 0:
            raise RuntimeError(f"replay exited {proc.returncode}: {summary[-2000:]}")
        data = out.read_bytes()
    return ChildRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_kb=usage.ru_maxrss,  # kilobytes on Linux
        anomalies=data.count(b"\n"),
        sha256=hashlib.sha256(data).hexdigest(),
        summary=summary,
    )


def _state_sizes(path: Path) -> tuple[float, list[int], str]:
    """(e) Replay in this process; seconds, and the stored size of every waybill state."""
    from waybill_watch.feeds import build_feeds
    from waybill_watch.settings import Settings

    settings = Settings()
    replay = Replay(settings.detection, build_feeds(settings), sink=lambda event: None)
    started = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            replay.process_line(line)
    stats = replay.finish()
    elapsed = time.perf_counter() - started
    sizes = [len(state.to_bytes()) for state in replay.waybill_states()]
    return elapsed, sizes, stats.summary().splitlines()[0]


def _rate(scans: int, seconds: float) -> str:
    return f"{seconds:8.2f} s {scans / seconds:12,.0f} scans/s"


def main(quick: bool = False) -> int:
    waybills = 2_000 if quick else 20_000
    command = ".venv/bin/python -m benchmarks replay" + (" --quick" if quick else "")
    print(f"replay benchmark: {waybills} simulated waybills, seed {SEED}", flush=True)
    capture = _capture(waybills)
    _bare_read(capture.path)  # warm the page cache so every row reads from memory
    bare = _bare_read(capture.path)
    floor = _decode_floor(capture.path)
    parse, scans = _bare_parse(capture.path)
    print(
        f"capture {capture.path.relative_to(ROOT)} ({capture.note}): {capture.size / 1e6:.1f} MB, "
        f"{capture.envelopes} envelopes, {scans} scans (trace entries of every push)",
        flush=True,
    )
    print(f"(a) read + orjson.loads of each envelope line  {_rate(scans, bare)}", flush=True)
    print(
        f"(b) decode floor, no per-trace work           {_rate(scans, floor)}"
        f"   ratio to (a) {bare / floor:.3f}   [(a) + Kdniao form decoded by "
        "feeds.common.read_form (binascii.a2b_qp fast path, urllib.parse.unquote fallback) "
        "+ orjson RequestData]",
        flush=True,
    )
    print(
        "    (b) is what any CPython replay must at least spend decoding the nested pushes, "
        f"so replay / (a) cannot exceed {bare / floor:.3f}",
        flush=True,
    )
    print(f"(c) bare parse down to the scans               {_rate(scans, parse)}", flush=True)
    child = _replay_child(capture.path)
    print(
        f"(d) waybill-watch replay, child process       {_rate(scans, child.wall)}"
        f"   cpu {child.cpu:.2f} s, peak RSS {child.peak_rss_kb / 1024:.1f} MiB, "
        f"{child.anomalies} anomalies (sha256 {child.sha256[:16]})",
        flush=True,
    )
    print(f"    {child.summary.splitlines()[0] if child.summary else ''}", flush=True)
    print(
        f"replay / (a) = {bare / child.wall:.3f}  (aim >= {AIM:.3f}: "
        f"{'met' if bare / child.wall >= AIM else 'not met'})",
        flush=True,
    )
    print(f"replay / (b) = {floor / child.wall:.3f}", flush=True)
    print(f"replay / (c) = {parse / child.wall:.3f}", flush=True)
    elapsed, sizes, summary = _state_sizes(capture.path)
    if sizes:
        q = statistics.quantiles(sizes, n=100) if len(sizes) > 1 else [float(sizes[0])] * 99
        print(
            f"(e) state bytes per waybill over {len(sizes)} waybills (WaybillState.to_bytes): "
            f"mean {statistics.fmean(sizes):.0f}, p50 {q[49]:.0f}, p99 {q[98]:.0f}, "
            f"max {max(sizes)}, total {sum(sizes) / 1e6:.1f} MB",
            flush=True,
        )
    print(
        f"    (in-process replay for (e): {_rate(scans, elapsed).strip()}; {summary})", flush=True
    )
    print(f"repeat: {command}   (make bench runs every benchmark)", flush=True)
    return 0
