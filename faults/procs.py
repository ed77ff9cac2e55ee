"""Worker and ingest processes of a run: spawn, SIGKILL, restart, metrics, RSS.

The same isolated settings as the integration tests' ``spawn_process`` (own topic prefix, web
port, data dir), without pytest: the harness runs outside the test suite too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` from /proc (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Proc:
    """One ``waybill-watch worker`` or ``ingest`` process; restartable with the same settings."""

    name: str
    command: str
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Exits nobody asked for: (monotonic time, exit code, last error line).
    self_exits: list[tuple[float, int, str]] = field(default_factory=list)
    #: While True the supervisor leaves the process alone (the nemesis or a stop owns it).
    held: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "waybill_watch", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    def kill(self) -> int:
        """SIGKILL; the exit code (``-9``, or the code of an exit that came first)."""
        return self.stop(signal.SIGKILL)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def last_error(self) -> str:
        errors = [
            line
            for line in self.log_tail(300).splitlines()
            if "Error" in line or "Exception" in line or "error" in line
        ]
        return errors[-1][:300] if errors else "?"

    async def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        client = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=client) as http,
            http.get(self.base_url + path) as response,
        ):
            return response.status, await response.text()

    async def metrics(self) -> str:
        try:
            status, text = await self.get("/metrics")
        except (aiohttp.ClientError, TimeoutError):
            return ""
        return text if status == 200 else ""

    async def ready(self) -> bool:
        try:
            status, _ = await self.get("/readyz")
        except (aiohttp.ClientError, TimeoutError):
            return False
        return status == 200


def spawn(
    name: str,
    command: str,
    bootstrap: str,
    prefix: str,
    workdir: Path,
    *,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start ``waybill-watch <command>`` with its own web port and data dir."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    full.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_WEB_PORT": str(port),
            "WAYBILL_WATCH_WEB_BIND": "127.0.0.1",
            "WAYBILL_WATCH_ADVERTISED_URL": f"http://127.0.0.1:{port}",
            "WAYBILL_WATCH_DATA_DIR": str(data_dir or workdir / name),
            "WAYBILL_WATCH_TICK_INTERVAL_SECONDS": "1",
            "WAYBILL_WATCH_LOG_LEVEL": "info",
            **(env or {}),
        }
    )
    return Proc(name, command, full, workdir / f"{name}.log", port).start()


async def wait_ready(proc: Proc, timeout: float = 180, *, restart: bool = True) -> float:
    """Seconds until ``/readyz`` answers 200; restarts the process if it exits meanwhile
    (``restart=False`` while a supervisor does that)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if restart and not proc.running() and not proc.held:
            code = proc.proc.returncode if proc.proc is not None else 0
            proc.self_exits.append((time.monotonic(), code, proc.last_error()))
            await asyncio.sleep(1)
            proc.start()
        if await proc.ready():
            return time.monotonic() - began
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{proc.name} not ready after {timeout:.0f} s:\n{proc.log_tail()}")
