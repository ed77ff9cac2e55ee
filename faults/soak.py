"""Soak run (``python -m faults soak --minutes M --rate R``, ``make soak``): the harness's
traffic at a steady rate to two ingest replicas and one worker, no faults.

Every 10 s: RSS of the worker and of each ingest (``/proc/<pid>/status``), the worker's consumer
lag (``waybill_watch_consumer_lag``, summed), push → anomaly latency (deltas of the
``waybill_watch_push_to_anomaly_seconds`` histogram: mean and p99 bucket bound of the interval)
and errors (answers other than 200, pushes given up, process exits). Plotted to ``soak.png``.

Pass: no error, and no growth over the second half of the run: the least-squares slope of each
process's RSS below ``--max-rss-slope`` MiB/min, the lag's slope below 1 record/s and its last
value below 30 s of traffic.

Default rate: half the maximum measured first (a 15 s flood of 32 concurrent pushers, counted
until the worker committed all of ``tracking.raw``: what the whole path sustains).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from faults.harness import INGEST_ENV, WORKER_ENV
from faults.kafka import group_lag
from faults.procs import ROOT, Proc, rss_bytes, spawn, wait_ready
from faults.traffic import LoadGen, Traffic
from waybill_watch.devbroker import LocalBroker
from waybill_watch.ops import metric_sum

INTERVAL_S = 10.0
#: Small RocksDB memory (docs/operations.md, Sizing: ~150 MiB + store partitions x 3 x write
#: buffer + block cache): the memtables fill within minutes, so a growth trend in the second half
#: of a 30-minute run is not the warm-up. Bound here: about 150 + 8 x 3 x 2 + 16 = 214 MiB.
SOAK_WORKER_ENV = {
    **WORKER_ENV,
    "WAYBILL_WATCH_ROCKSDB_WRITE_BUFFER_MB": "2",
    "WAYBILL_WATCH_ROCKSDB_BLOCK_CACHE_MB": "16",
}
HIST = "waybill_watch_push_to_anomaly_seconds"


@dataclass
class Sample:
    t: float
    rss: dict[str, float]  # MiB
    lag: float
    latency_mean_ms: float | None
    latency_p99_ms: float | None
    anomalies: float
    pushes: int
    errors: int


@dataclass
class Soak:
    out: Path
    minutes: float
    rate: float | None
    max_rss_slope: float
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than 2 points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _buckets(text: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the histogram, every type summed."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(HIST + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return sorted(out.items())


async def _measure_max(urls: list[str], traffic: Traffic, bootstrap: str, prefix: str) -> float:
    """Pushes/s the whole path sustains: 32 pushers for 15 s, counted until the group
    committed all of ``tracking.raw`` and (but for a few clock ticks) the updates topic."""
    accepted = 0
    began = time.monotonic()
    stop = began + 15

    async def pusher(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while time.monotonic() < stop:
            push = traffic.next_push()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post(
                    f"{urls[i % len(urls)]}/callbacks/kdniao", data=push.body, headers=push.headers
                ) as response:
                    await response.read()
                    accepted += response.status == 200

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(pusher(i, http) for i in range(32)))
    group, raw = f"{prefix}waybill-watch", f"{prefix}tracking.raw"
    updates = f"{prefix}waybill-watch.updates"
    while True:  # raw all committed, the waybill stage within its clock ticks of the end
        lags = [await group_lag(bootstrap, group, raw), await group_lag(bootstrap, group, updates)]
        if lags[0] == 0 and lags[1] is not None and lags[1] <= 50:
            break
        await asyncio.sleep(0.5)
    return accepted / (time.monotonic() - began)


async def _run(soak: Soak) -> dict[str, Any]:
    out = soak.out
    out.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:6].upper()
    prefix = f"soak{run.lower()}."
    from waybill_watch.localproc import free_port

    broker = LocalBroker(free_port(), out / "broker")
    procs: list[Proc] = []
    load: LoadGen | None = None
    began = time.monotonic()
    try:
        bootstrap = await asyncio.to_thread(broker.start)
        worker = spawn("worker", "worker", bootstrap, prefix, out, env=SOAK_WORKER_ENV)
        procs.append(worker)
        await wait_ready(worker)
        ingests = [
            spawn(f"ingest-{i}", "ingest", bootstrap, prefix, out, env=INGEST_ENV) for i in range(2)
        ]
        procs += ingests
        for ingest in ingests:
            await wait_ready(ingest)
        urls = [p.base_url for p in ingests]
        traffic = Traffic(run, 3)
        rate = soak.rate
        if rate is None:
            maximum = await _measure_max(urls, traffic, bootstrap, prefix)
            rate = max(1.0, maximum / 2)
            soak.notes.append(f"measured maximum {maximum:.0f} pushes/s; soak at half")
            print(f"measured maximum {maximum:.0f} pushes/s; soaking at {rate:.0f}/s", flush=True)
            await asyncio.sleep(5)
        soak.rate = rate
        load = LoadGen(urls, traffic, rate)
        loader = asyncio.create_task(load.run())
        end = time.monotonic() + soak.minutes * 60
        start = time.monotonic()
        prev_hist = _buckets(await worker.metrics())
        prev_sum = metric_sum(await worker.metrics(), HIST + "_sum")
        seen_attempts = 0
        exits = 0
        while time.monotonic() < end:
            await asyncio.sleep(INTERVAL_S)
            text = await worker.metrics()
            hist = _buckets(text)
            total = metric_sum(text, HIST + "_sum")
            counts = {b: c for b, c in hist}
            before = {b: c for b, c in prev_hist}
            delta = [(b, counts[b] - before.get(b, 0.0)) for b in counts]
            n = delta[-1][1] if delta else 0.0
            mean = (total - prev_sum) / n * 1000 if n > 0 else None
            p99 = None
            if n > 0:
                p99 = next((b * 1000 for b, c in delta if c >= 0.99 * n), None)
            prev_hist, prev_sum = hist, total
            attempts = [a for r in load.results for a in r.attempts]
            errors = sum(1 for a in attempts[seen_attempts:] if a.status != "200")
            seen_attempts = len(attempts)
            for p in procs:  # an exit is an error; restart it as a supervisor would
                if not p.running():
                    code = p.proc.returncode if p.proc else 0
                    p.self_exits.append((time.monotonic(), code, p.last_error()))
                    print(f"{p.name} exited ({code}): {p.last_error()}", flush=True)
                    p.start()
            now_exits = sum(len(p.self_exits) for p in procs)
            errors += now_exits - exits
            exits = now_exits
            rss = {p.name: (rss_bytes(p.pid) or 0) / 2**20 for p in procs if p.pid is not None}
            sample = Sample(
                round(time.monotonic() - start, 1),
                {k: round(v, 1) for k, v in rss.items()},
                metric_sum(text, "waybill_watch_consumer_lag"),
                None if mean is None else round(mean, 1),
                None if p99 is None or p99 == float("inf") else round(p99, 1),
                n,
                len(load.results),
                errors,
            )
            soak.samples.append(sample)
            print(
                f"[{sample.t:6.0f} s] rss {sample.rss} lag {sample.lag:.0f} "
                f"push→anomaly mean {sample.latency_mean_ms} ms p99≤{sample.latency_p99_ms} ms "
                f"pushes {sample.pushes} errors {sample.errors}",
                flush=True,
            )
        load.stop()
        await loader
    finally:
        if load is not None:
            load.stop()
        for p in procs:
            p.held = True
            await asyncio.to_thread(p.stop)
        broker.stop()
    return judge(soak, load, time.monotonic() - began)


def judge(soak: Soak, load: LoadGen | None, seconds: float) -> dict[str, Any]:
    samples = soak.samples
    half = samples[len(samples) // 2 :]
    xs = [s.t / 60 for s in half]
    slopes = {
        name: round(slope(xs, [s.rss.get(name, 0.0) for s in half]), 2)
        for name in (samples[0].rss if samples else {})
    }
    lag_slope = slope([s.t for s in half], [s.lag for s in half])
    rate = soak.rate or 0.0
    last_lag = samples[-1].lag if samples else 0.0
    results = load.results if load is not None else []
    errors = sum(s.errors for s in samples) + sum(1 for r in results if r.gave_up)
    latencies = [s.latency_mean_ms for s in samples if s.latency_mean_ms is not None]
    checks = {
        "rss_flat": all(v < soak.max_rss_slope for v in slopes.values()) and bool(slopes),
        "lag_not_growing": lag_slope < 1.0 and last_lag < 30 * max(rate, 1.0),
        "no_errors": errors == 0,
        "enough_samples": len(samples) >= 4,
    }
    ok = all(checks.values())
    summary = (
        f"SOAK {'ok' if ok else 'FAILED'} minutes={soak.minutes:g} rate={rate:.0f}/s "
        f"pushes_accepted={sum(1 for r in results if r.accepted)}/{len(results)} "
        f"samples={len(samples)} rss_slope_mib_per_min="
        + ",".join(f"{k}:{v}" for k, v in slopes.items())
        + f" lag_last={last_lag:.0f} lag_slope_per_s={lag_slope:.2f} "
        f"push_to_anomaly_mean_ms={sum(latencies) / len(latencies) if latencies else 0:.0f} "
        f"errors={errors} seconds={seconds:.0f}"
    )
    if not ok:
        summary += " failed=" + ",".join(k for k, v in checks.items() if not v)
    report = {
        "ok": ok,
        "summary": summary,
        "checks": checks,
        "rss_slopes_mib_per_min": slopes,
        "lag_slope_per_s": lag_slope,
        "rate": rate,
        "notes": soak.notes,
        "samples": [s.__dict__ for s in samples],
    }
    (soak.out / "soak.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    lines = [f"# Soak ({soak.minutes:g} min at {rate:.0f} pushes/s)", "", f"`{summary}`", ""]
    lines += [f"- {k}: {'ok' if v else '**FAILED**'}" for k, v in checks.items()]
    lines += ["", "![soak](soak.png)", ""]
    (soak.out / "soak.md").write_text("\n".join(lines), encoding="utf-8")
    plot(soak)
    return report


def plot(soak: Soak) -> None:
    try:
        import matplotlib
    except ImportError:  # the dev extra has it; a venv from an older lock may not
        print("matplotlib is not installed: no soak.png (pip install -e '.[dev]')", flush=True)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = soak.samples
    if not samples:
        return
    t = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    for name in samples[0].rss:
        axes[0].plot(t, [s.rss.get(name, 0) for s in samples], label=name)
    axes[0].set_ylabel("RSS (MiB)")
    axes[0].legend()
    axes[1].plot(t, [s.lag for s in samples])
    axes[1].set_ylabel("consumer lag (records)")
    axes[2].plot(t, [s.latency_mean_ms or 0 for s in samples], label="mean")
    axes[2].plot(t, [s.latency_p99_ms or 0 for s in samples], label="p99 (bucket bound)")
    axes[2].set_ylabel("push → anomaly (ms)")
    axes[2].legend()
    axes[3].bar(t, [s.errors for s in samples], width=0.1)
    axes[3].set_ylabel("errors / 10 s")
    axes[3].set_xlabel("minutes")
    fig.suptitle(f"soak: {soak.minutes:g} min at {soak.rate or 0:.0f} pushes/s")
    fig.tight_layout()
    fig.savefig(soak.out / "soak.png", dpi=90)
    plt.close(fig)


def main(minutes: float, rate: float | None, out: Path | None, max_rss_slope: float) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (out or ROOT / ".run" / "faults" / f"soak-{stamp}").resolve()
    report = asyncio.run(_run(Soak(out, minutes, rate, max_rss_slope)))
    print(f"report: {out / 'soak.md'} (plot {out / 'soak.png'})")
    print(report["summary"], flush=True)
    return 0 if report["ok"] else 1
