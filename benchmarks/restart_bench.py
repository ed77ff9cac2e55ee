"""A worker restarted while one broker of a 3-node cluster is down: seconds until it serves.

A local 3-node KRaft cluster (``devbroker.LocalCluster``); per node: a worker starts with every
node up (its topics created, replication 3), is SIGKILLed, that node is SIGKILLed, and a new
worker process starts on the same data dir. Timed from its spawn to its first answer on
``/healthz`` (served once the stream engine is built). The metadata keeps naming the dead node
(as controller) until the controller fences it, so the engine's first admin requests may time
out (``worker.app.ENGINE_REQUEST_TIMEOUT_S``) and are retried with fresh metadata.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.replay_bench import ROOT
from waybill_watch.devbroker import LocalCluster

NODES = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serving(proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def main(quick: bool = False) -> int:
    victims = [0] if quick else list(range(NODES))
    cluster = LocalCluster(NODES)
    bootstrap = cluster.start()
    results: list[tuple[int, bool, float]] = []
    try:
        for trial, victim in enumerate(victims):
            with tempfile.TemporaryDirectory(prefix="wbw-restart-") as tmp:
                port = _free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
                env.update(
                    KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                    WAYBILL_WATCH_TOPIC_PREFIX=f"restart{trial}.",
                    WAYBILL_WATCH_PARTITIONS="2",
                    WAYBILL_WATCH_REPLICATION_FACTOR=str(NODES),
                    WAYBILL_WATCH_DATA_DIR=f"{tmp}/worker",
                    WAYBILL_WATCH_WEB_PORT=str(port),
                    WAYBILL_WATCH_LOG_LEVEL="warning",
                    WAYBILL_WATCH_SESSION_TIMEOUT_SECONDS="6",
                )
                log = Path(tmp) / "worker.log"
                first = _spawn(env, log)
                if not _serving(first, port, 120):
                    print(log.read_text(errors="replace")[-2000:])
                    raise RuntimeError("the first worker did not start with every node up")
                time.sleep(3)
                first.kill()
                first.wait()
                cluster.kill(victim)
                began = time.monotonic()
                second = _spawn(env, log)
                ok = _serving(second, port, 180)
                results.append((victim, ok, time.monotonic() - began))
                print(f"  node {victim + 1} down: serving={ok} after {results[-1][2]:.1f} s")
                second.kill()
                second.wait()
                cluster.restart(victim)
    finally:
        cluster.stop()
    times = ", ".join(f"{seconds:.1f} s" for _, ok, seconds in results if ok)
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"worker restart with one of {NODES} brokers down: serving after {times}", end="")
    print(f"; {failed} did not start within 180 s" if failed else "")
    print("repeat: .venv/bin/python -m benchmarks restart" + (" --quick" if quick else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))
