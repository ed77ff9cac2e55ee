"""Start and stop one local Kafka broker process (a single-node broker, or one node of a
``LocalCluster``).

The broker runs in its own session/process group: Ctrl-C in the terminal that started it
does not reach it, and stopping signals the whole group. A pid file in the data dir lets
another process (``python -m waybill_watch.devbroker down``) find and stop it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from waybill_watch.devbroker import KAFKA_VERSION, BrokerError
from waybill_watch.devbroker.config import (
    HOST,
    NODE_ID,
    SaslSslListener,
    free_port,
    listener_port,
    new_cluster_id,
    parse_properties,
    port_is_free,
    render_server_properties,
)
from waybill_watch.devbroker.jars import classpath, ensure_jars
from waybill_watch.devbroker.ready import wait_until_ready
from waybill_watch.devbroker.tools import check_java, find_java, tail, tail_file

if TYPE_CHECKING:
    from waybill_watch.kafka_client import KafkaConnection

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 20.0
FORMAT_TIMEOUT_S = 120.0

PID_FILE = "broker.pid"
LOG_FILE = "broker.log"
PROPERTIES_FILE = "server.properties"
LOG4J_FILE = "log4j2.properties"
KRAFT_DIR = "kraft-logs"
KEYSTORE_FILE = "keystore.pem"


class LocalBroker:
    """One KRaft broker+controller on 127.0.0.1, run from the cached Maven jars.

    ``port=None`` picks a free port. ``data_dir=None`` uses a temporary directory that
    ``stop()`` deletes; a given ``data_dir`` is kept (topics survive restarts).

    Alone it is a single-node cluster. As node ``node_id`` of a static quorum it gets the
    quorum's ``voters`` (node id → controller port, its own included), the ``controller_port``
    named there and the quorum's ``cluster_id``; then ``launch()`` it and wait for the quorum
    (``LocalCluster`` does): one node of three never becomes ready on its own.

    ``secure``: clients reach it over SASL_SSL (SCRAM users made at format time) instead of
    PLAINTEXT; :meth:`connection` is how a client logs in (a single node only).
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        *,
        heap: str = "512m",
        controller_port: int | None = None,
        node_id: int = NODE_ID,
        voters: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        secure: SaslSslListener | None = None,
    ) -> None:
        if secure is not None and not secure.users:
            raise ValueError("a SASL_SSL broker needs at least one SCRAM user")
        self.secure = secure
        self.internal_port: int | None = None
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._temporary = data_dir is None
        self.data_dir: Path | None = None if data_dir is None else Path(data_dir).resolve()
        self.heap = heap
        self.node_id = node_id
        self.voters = None if voters is None else dict(voters)
        self.cluster_id = cluster_id
        self.port: int | None = None
        self.controller_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` once started."""
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{HOST}:{self.port}"

    def connection(self, user: str | None = None, password: str | None = None) -> KafkaConnection:
        """How a client connects: PLAINTEXT, or SASL_SSL as ``user`` (default: the first
        user; ``password`` overrides the user's, e.g. to test a refused login)."""
        from waybill_watch.kafka_client import KafkaConnection

        if self.secure is None:
            return KafkaConnection(self.bootstrap)
        return self.secure.connection(self.bootstrap, user, password)

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid while this object manages it."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the JVM this object spawned is still alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """``<data_dir>/broker.log``: the broker's stdout and stderr."""
        if self.data_dir is None:
            raise BrokerError("broker has no data dir yet")
        return self.data_dir / LOG_FILE

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the broker and return its bootstrap address once it serves clients."""
        if self.running:
            return self.bootstrap
        self.launch()
        try:
            wait_until_ready(self.connection(), timeout, probe_topic=True, check=self.check_alive)
        except BrokerError as exc:
            message = self.failure_message(exc)
            self.stop()
            raise BrokerError(message) from None
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def launch(self) -> None:
        """Format the storage (once) and spawn the JVM, without waiting for it to serve."""
        if self.running:
            return
        java = find_java()
        check_java(java)
        libs = ensure_jars()
        try:
            data_dir = self._prepare_data_dir()
            self._choose_ports()
            properties = self._write_config(data_dir)
            cluster_id = (
                existing_cluster_id(data_dir / KRAFT_DIR) or self.cluster_id or new_cluster_id()
            )
            scram = self.secure.scram_arguments() if self.secure is not None else []
            _format_storage(java, libs, properties, data_dir / LOG4J_FILE, cluster_id, scram)
            self._proc = self._spawn(java, libs, properties)
            atexit.register(self.stop)
            write_pid(data_dir, self._proc.pid)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL the broker (a crash: no controlled shutdown); the data dir is kept."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.data_dir is not None:
            remove_pid(self.data_dir, proc.pid)

    def terminate(self) -> None:
        """Send SIGTERM without waiting (``stop()`` waits and cleans up)."""
        if self.running:
            assert self._proc is not None
            _signal_group(self._proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM the broker's process group, SIGKILL after 20 s; safe to call twice."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate_child(proc)
            if self.data_dir is not None:
                remove_pid(self.data_dir, proc.pid)
        if self._temporary and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def detach(self) -> int:
        """Leave the running broker alone from now on (no stop at exit); return its pid."""
        if self._proc is None:
            raise BrokerError("broker not started")
        if self._temporary:
            raise BrokerError("a broker with a temporary data dir cannot be detached")
        atexit.unregister(self.stop)
        pid, self._proc = self._proc.pid, None
        return pid

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_data_dir(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="waybill-watch-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        other = running_pid(self.data_dir)
        if other is not None:
            raise BrokerError(
                f"a broker (pid {other}) is already running with data dir {self.data_dir}"
            )
        return self.data_dir

    def _choose_ports(self) -> None:
        port = _usable_port(self._requested_port)
        self.port = port
        self.controller_port = _usable_port(self._requested_controller_port, exclude={port})
        if self.secure is not None:
            self.internal_port = free_port(exclude=frozenset({port, self.controller_port}))

    def _write_config(self, data_dir: Path) -> Path:
        assert self.port is not None and self.controller_port is not None
        keystore = None
        if self.secure is not None:
            # Kafka's PEM key store: the private key and the certificate chain in one file
            keystore = data_dir / KEYSTORE_FILE
            keystore.write_bytes(
                self.secure.keyfile.read_bytes().rstrip()
                + b"\n"
                + self.secure.certfile.read_bytes()
            )
            keystore.chmod(0o600)
        text = render_server_properties(
            self.port,
            self.controller_port,
            data_dir / KRAFT_DIR,
            node_id=self.node_id,
            voters=self.voters,
            secure=self.secure,
            internal_port=self.internal_port,
            keystore=keystore,
        )
        properties = data_dir / PROPERTIES_FILE
        properties.write_text(text, encoding="utf-8")
        log4j = resources.files("waybill_watch.devbroker").joinpath(LOG4J_FILE).read_bytes()
        (data_dir / LOG4J_FILE).write_bytes(log4j)
        return properties

    def _spawn(self, java: str, libs: Path, properties: Path) -> subprocess.Popen[bytes]:
        log_path = self.log_path
        if log_path.exists():
            log_path.replace(log_path.with_name(LOG_FILE + ".prev"))
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={properties.parent / LOG4J_FILE}",
            "-cp",
            classpath(libs),
            "kafka.Kafka",
            str(properties),
        ]
        with log_path.open("ab") as log:
            return subprocess.Popen(
                cmd,
                cwd=properties.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        """Raise :class:`BrokerError` if the spawned JVM has exited (for readiness waits)."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise BrokerError(
                f"Kafka node {self.node_id} exited with code {proc.returncode} during start"
            )

    def failure_message(self, exc: BrokerError) -> str:
        """``exc`` with the tail of this broker's log (where the JVM says what went wrong)."""
        where = "" if self._temporary else f" (full log: {self.log_path})"
        return (
            f"local Kafka {KAFKA_VERSION} broker (node {self.node_id}) failed to start: {exc}\n"
            f"last lines of the broker log{where}:\n{tail_file(self.log_path)}"
        )


def _usable_port(requested: int | None, exclude: set[int] | None = None) -> int:
    """``requested`` if it can be bound now, else an error; a free port when None."""
    if requested is None:
        return free_port(exclude=frozenset(exclude or ()))
    if not port_is_free(requested):
        raise BrokerError(
            f"port {requested} on {HOST} is already in use (another broker? try another port)"
        )
    return requested


def existing_cluster_id(log_dir: Path) -> str | None:
    """The cluster id a kept data dir was formatted with.

    ``--ignore-formatted`` still insists on the same id (Kafka 4.3 fails with "Invalid
    cluster.id"), so a restart must reuse it.
    """
    try:
        text = (log_dir / "meta.properties").read_text(encoding="utf-8")
    except OSError:
        return None
    return parse_properties(text).get("cluster.id") or None


def _format_storage(
    java: str,
    libs: Path,
    properties: Path,
    log4j: Path,
    cluster_id: str,
    extra: list[str] | None = None,
) -> None:
    """``kafka-storage format`` (``extra``: e.g. ``--add-scram`` users); a no-op on an already
    formatted data dir."""
    cmd = [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(libs),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(properties),
        "--ignore-formatted",
        *(extra or ()),
    ]
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=FORMAT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"formatting Kafka storage failed: {exc}") from exc
    if done.returncode != 0:
        raise BrokerError(
            f"formatting Kafka storage failed (exit {done.returncode}):\n"
            f"{tail(done.stdout + done.stderr)}"
        )


def _terminate_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it leads its own session), else the pid."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# --- pid file: how a later process finds a detached broker ---------------------------


def write_pid(data_dir: Path, pid: int) -> None:
    """Write the pid atomically so a concurrent reader never sees half a number."""
    tmp = data_dir / f".{PID_FILE}.{os.getpid()}"
    tmp.write_text(f"{pid}\n", encoding="utf-8")
    tmp.replace(data_dir / PID_FILE)


def read_pid(data_dir: Path) -> int | None:
    """The pid in ``<data_dir>/broker.pid``, or None when absent or unreadable."""
    try:
        return int((data_dir / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def remove_pid(data_dir: Path, pid: int | None = None) -> None:
    """Remove the pid file (only if it still names ``pid``, when given)."""
    if pid is not None and read_pid(data_dir) not in (pid, None):
        return
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PID_FILE).unlink()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies count as dead; our own exited children are reaped)."""
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_broker_for(pid: int, data_dir: Path) -> bool:
    """Guard against pid reuse: the process must be kafka.Kafka on this data dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    args = [arg.decode(errors="replace") for arg in cmdline]
    return "kafka.Kafka" in args and str(data_dir.resolve() / PROPERTIES_FILE) in args


def running_pid(data_dir: Path) -> int | None:
    """The pid of the broker running on ``data_dir`` per its pid file, else None."""
    pid = read_pid(data_dir)
    if pid is None or not pid_alive(pid) or not _is_broker_for(pid, data_dir):
        return None
    return pid


def configured_port(data_dir: Path) -> int | None:
    """The client port in ``<data_dir>/server.properties`` (what the broker listens on)."""
    try:
        text = (data_dir / PROPERTIES_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    properties = parse_properties(text)
    return listener_port(properties) or listener_port(properties, "SASL_SSL")


def stop_pid(pid: int, grace: float = STOP_GRACE_S) -> bool:
    """Stop a broker we did not spawn (found by pid file). True if it had to be killed."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True
