"""waybill_watch.devbroker without Java or Maven: config, error messages, jar cache.

Real ``java``/``mvn`` are replaced by small shell scripts so the subprocess paths
(version check, Maven failure, broker dying during start) run for real but fast.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from waybill_watch.devbroker import (
    KAFKA_VERSION,
    LOG4J_VERSION,
    BrokerError,
    LocalBroker,
    LocalCluster,
)
from waybill_watch.devbroker import __main__ as cli
from waybill_watch.devbroker.broker import (
    existing_cluster_id,
    pid_alive,
    read_pid,
    running_pid,
    stop_pid,
)
from waybill_watch.devbroker.config import (
    listener_port,
    new_cluster_id,
    parse_properties,
    port_is_free,
    quorum_voters,
    render_server_properties,
    replication_for,
)
from waybill_watch.devbroker.jars import MARKER, cache_root, ensure_jars, is_complete, libs_dir
from waybill_watch.devbroker.ready import split_bootstrap, wait_until_ready
from waybill_watch.devbroker.tools import check_java, find_java, find_mvn, parse_java_major

# --- helpers ---------------------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def _fake_java(tmp_path: Path, kafka_main: str, version: str = "17.0.15") -> Path:
    """A JAVA_HOME whose java answers -version, formats storage, and runs ``kafka_main``."""
    home = tmp_path / "jdk"
    _script(
        home / "bin" / "java",
        f"""\
        case "$*" in
          -version) echo 'openjdk version "{version}" 2025-04-15' >&2; exit 0;;
          *kafka.tools.StorageTool*) echo "Formatting metadata directory"; exit 0;;
          *kafka.Kafka*) {kafka_main};;
        esac
        exit 99
        """,
    )
    return home


def _complete_cache(libs: Path, version: str = KAFKA_VERSION) -> None:
    libs.mkdir(parents=True)
    jars = ["a.jar", "b.jar"]
    for jar in jars:
        (libs / jar).write_bytes(b"PK")
    marker = {"kafka_version": version, "log4j_version": LOG4J_VERSION, "jars": jars}
    (libs / MARKER).write_text(json.dumps(marker))


def _which_only(monkeypatch: pytest.MonkeyPatch, **found: str) -> None:
    """Pretend PATH holds only the given tools."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: found.get(name))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("WAYBILL_WATCH_CACHE_DIR", str(root))
    return root


# --- config ----------------------------------------------------------------------------


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = parse_properties(render_server_properties(19092, 19093, tmp_path / "logs"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "logs")
    assert props["auto.create.topics.enable"] == "false"
    for key in (*REPLICATION_KEYS, *MIN_ISR_KEYS):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert listener_port(props) == 19092
    assert listener_port(props, "CONTROLLER") == 19093


REPLICATION_KEYS = (
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "share.coordinator.state.topic.replication.factor",
)
MIN_ISR_KEYS = (
    "min.insync.replicas",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.min.isr",
)


def test_server_properties_node_of_a_three_node_quorum(tmp_path: Path) -> None:
    voters = {1: 29093, 2: 29095, 3: 29097}
    text = render_server_properties(29094, 29095, tmp_path / "n2", node_id=2, voters=voters)
    props = parse_properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29094"
    assert props["log.dirs"] == str(tmp_path / "n2")
    for key in REPLICATION_KEYS:
        assert props[key] == "3", key
    for key in MIN_ISR_KEYS:
        assert props[key] == "2", key
    # Everything but identity, ports and paths is the single-node configuration.
    single = parse_properties(render_server_properties(1, 2, tmp_path))
    per_node = {"node.id", "controller.quorum.voters", "listeners", "advertised.listeners"}
    per_node |= {"log.dirs", *REPLICATION_KEYS, *MIN_ISR_KEYS}
    assert {k: v for k, v in props.items() if k not in per_node} == {
        k: v for k, v in single.items() if k not in per_node
    }


def test_server_properties_refuse_a_node_outside_the_voters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not among the voters"):
        render_server_properties(1, 2, tmp_path, node_id=4, voters={1: 2, 2: 3, 3: 4})
    with pytest.raises(ValueError, match="not among the voters"):  # wrong controller port
        render_server_properties(1, 9, tmp_path, node_id=1, voters={1: 2, 2: 3, 3: 4})


@pytest.mark.parametrize(("size", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))])
def test_replication_follows_the_cluster_size(size: int, expected: tuple[int, int]) -> None:
    assert replication_for(size) == expected


def test_replication_needs_a_node() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        replication_for(0)
    with pytest.raises(ValueError, match="at least one node"):
        LocalCluster(size=0)


def test_quorum_voters_are_sorted_by_node_id() -> None:
    assert quorum_voters({3: 7, 1: 5}) == "1@127.0.0.1:5,3@127.0.0.1:7"


def test_cluster_id_is_a_kafka_uuid() -> None:
    for _ in range(500):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_existing_cluster_id_is_reused(tmp_path: Path) -> None:
    assert existing_cluster_id(tmp_path) is None
    (tmp_path / "meta.properties").write_text("version=1\ncluster.id=abcDEF123-_xyz0000000A\n")
    assert existing_cluster_id(tmp_path) == "abcDEF123-_xyz0000000A"


def test_port_is_free_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a:1", [("a", 1)]), ("127.0.0.1:9092, b:2", [("127.0.0.1", 9092), ("b", 2)])],
)
def test_split_bootstrap(text: str, expected: list[tuple[str, int]]) -> None:
    assert split_bootstrap(text) == expected


@pytest.mark.parametrize("text", ["localhost", "a:b", ":9092"])
def test_split_bootstrap_rejects_garbage(text: str) -> None:
    with pytest.raises(BrokerError, match="host:port"):
        split_bootstrap(text)
    with pytest.raises(BrokerError, match="host:port"):
        wait_until_ready(text, 60)  # at once, not after the timeout


def test_wait_until_ready_times_out_clearly() -> None:
    with socket.socket() as sock:  # a port that is bound but never accepts
        sock.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(BrokerError, match=f"Kafka at {bootstrap} not ready after"):
            wait_until_ready(bootstrap, 0.5)


# --- java / mvn ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21-ea" 2023-09-19', 21),
        ('openjdk version "25" 2025-09-16', 25),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _which_only(monkeypatch, mvn="/usr/bin/mvn")
    with pytest.raises(BrokerError, match=r"java not found.*Java 17\+"):
        find_java()
    with pytest.raises(BrokerError, match="java not found"):
        LocalBroker().start()


def test_old_java_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, "exit 1", version="11.0.2")))
    java = find_java()
    assert java == str(tmp_path / "jdk" / "bin" / "java")
    with pytest.raises(BrokerError, match=r"is Java 11, but Kafka .* needs Java 17\+"):
        check_java(java)


def test_missing_mvn_only_matters_without_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    _which_only(monkeypatch, java="/usr/bin/java")
    with pytest.raises(BrokerError, match=r"mvn not found.*Maven"):
        find_mvn()
    with pytest.raises(BrokerError, match="mvn not found"):
        ensure_jars()
    _complete_cache(libs_dir())
    assert ensure_jars() == libs_dir()  # complete cache: Maven is never looked for


# --- jar cache -------------------------------------------------------------------------


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    assert libs_dir("9.9.9") == tmp_path / "explicit" / "kafka-9.9.9" / "libs"
    monkeypatch.delenv("WAYBILL_WATCH_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "waybill-watch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "waybill-watch"


def test_cache_completeness(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    assert not is_complete(libs)
    _complete_cache(libs)
    assert is_complete(libs)
    assert not is_complete(libs, version="0.0.1")  # marker of another version
    (libs / "b.jar").unlink()
    assert not is_complete(libs)  # a listed jar went missing
    (libs / "b.jar").write_bytes(b"PK")
    (libs / MARKER).write_text("{not json")
    assert not is_complete(libs)
    (libs / MARKER).unlink()
    assert not is_complete(libs)  # jars without marker: an interrupted fetch


def _fake_mvn(tmp_path: Path, body: str) -> Path:
    """An ``mvn`` that finds ``-DoutputDirectory=`` and then runs ``body``."""
    calls = tmp_path / "mvn-calls"
    return _script(
        tmp_path / "bin" / "mvn",
        f"""\
        echo call >> {calls}
        for arg in "$@"; do
          case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
        done
        mkdir -p "$out"
        {body}
        """,
    )


def test_fetch_publishes_atomically_and_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mvn = _fake_mvn(tmp_path, 'touch "$out/kafka_2.13.jar" "$out/kafka-clients.jar"')
    _which_only(monkeypatch, mvn=str(mvn))
    libs = libs_dir()
    libs.mkdir(parents=True)
    (libs / "half-downloaded.jar").write_bytes(b"")  # an old interrupted fetch

    assert ensure_jars() == libs
    assert is_complete(libs)
    assert sorted(p.name for p in libs.glob("*.jar")) == ["kafka-clients.jar", "kafka_2.13.jar"]
    assert [p.name for p in libs.parent.iterdir()] == ["libs"]  # no temp dirs left
    ensure_jars()
    assert (tmp_path / "mvn-calls").read_text().count("call") == 1


def test_maven_failure_shows_its_output_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """\
        touch "$out/partial.jar"
        echo "[ERROR] Could not resolve org.apache.kafka:kafka_2.13"
        echo "[ERROR] BUILD FAILURE" >&2
        exit 1
    """
    _which_only(monkeypatch, mvn=str(_fake_mvn(tmp_path, body)))
    with pytest.raises(BrokerError) as failure:
        ensure_jars()
    message = str(failure.value)
    assert "Maven failed (exit 1)" in message
    assert "Could not resolve org.apache.kafka:kafka_2.13" in message
    assert "BUILD FAILURE" in message
    assert f"-Dkafka.version={KAFKA_VERSION}" in message
    assert not libs_dir().exists()
    assert list(libs_dir().parent.iterdir()) == []


# --- broker process (fake java) --------------------------------------------------------


def _use_fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_main: str) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, kafka_main)))
    _complete_cache(libs_dir())


def test_broker_dying_during_start_shows_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_fake_java(tmp_path, monkeypatch, 'echo "FATAL boom: cannot bind"; exit 3')
    data_dir = tmp_path / "broker"
    broker = LocalBroker(data_dir=data_dir)
    with pytest.raises(BrokerError) as failure:
        broker.start(timeout=30)
    message = str(failure.value)
    assert "exited with code 3 during start" in message
    assert "FATAL boom: cannot bind" in message
    assert (data_dir / "broker.log").exists()  # a given data dir is kept for inspection
    assert read_pid(data_dir) is None
    broker.stop()  # idempotent


def test_temporary_data_dir_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_fake_java(tmp_path, monkeypatch, "exit 1")
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    broker = LocalBroker()
    with pytest.raises(BrokerError, match="exited with code 1"):
        broker.start(timeout=30)
    assert broker.data_dir is None
    assert list(temp_root.iterdir()) == []


def test_unready_broker_times_out_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_fake_java(tmp_path, monkeypatch, "exec sleep 600")
    data_dir = tmp_path / "broker"
    broker = LocalBroker(data_dir=data_dir)
    started: list[int] = []
    monkeypatch.setattr(
        "waybill_watch.devbroker.broker.write_pid", lambda _d, pid: started.append(pid)
    )
    with pytest.raises(BrokerError, match="not ready after"):
        broker.start(timeout=1.0)
    assert started and not pid_alive(started[0])


def test_cluster_nodes_share_an_id_and_a_quorum_but_not_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    formats = tmp_path / "formats.txt"
    home = tmp_path / "jdk"
    _script(
        home / "bin" / "java",
        f"""\
        case "$*" in
          -version) echo 'openjdk version "17.0.15" 2025-04-15' >&2; exit 0;;
          *kafka.tools.StorageTool*) echo "$*" >> {formats}; exit 0;;
          *kafka.Kafka*) echo "FATAL node down"; exit 4;;
        esac
        exit 99
        """,
    )
    monkeypatch.setenv("JAVA_HOME", str(home))
    _complete_cache(libs_dir())
    cluster = LocalCluster(data_dir=tmp_path / "cluster")
    with pytest.raises(BrokerError) as failure:
        cluster.start(timeout=30)
    assert "exited with code 4" in str(failure.value)
    assert "FATAL node down" in str(failure.value)  # the dead node's log tail
    assert cluster.nodes == []  # every node stopped

    nodes = [
        parse_properties((tmp_path / "cluster" / f"node-{i}" / "server.properties").read_text())
        for i in (1, 2, 3)
    ]
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    assert len({n["controller.quorum.voters"] for n in nodes}) == 1
    voters = nodes[0]["controller.quorum.voters"]
    ports = [listener_port(n) for n in nodes] + [listener_port(n, "CONTROLLER") for n in nodes]
    assert len(set(ports)) == 6
    for i, node in enumerate(nodes, start=1):
        assert f"{i}@127.0.0.1:{listener_port(node, 'CONTROLLER')}" in voters
    calls = formats.read_text().splitlines()
    assert len(calls) == 3
    ids = {call.split(" -t ")[1].split()[0] for call in calls}
    assert len(ids) == 1, "every node must be formatted with the cluster's one id"
    assert not any("--standalone" in call for call in calls)


def test_cluster_kill_and_restart_address_nodes_by_index(tmp_path: Path) -> None:
    cluster = LocalCluster()
    with pytest.raises(BrokerError, match="not started"):
        _ = cluster.bootstrap
    with pytest.raises(BrokerError, match="no node with index 0"):
        cluster.kill(0)


def test_requested_port_in_use_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_fake_java(tmp_path, monkeypatch, "exit 1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalBroker(port=port, data_dir=tmp_path / "b").start()


def test_stop_pid_terminates_a_detached_process_group() -> None:
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    assert pid_alive(proc.pid)
    assert stop_pid(proc.pid, grace=5) is False
    assert not pid_alive(proc.pid)


def test_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    (tmp_path / "broker.pid").write_text(f"{os.getpid()}\n")  # alive, but not kafka.Kafka
    assert running_pid(tmp_path) is None


# --- CLI -------------------------------------------------------------------------------


def test_cli_status_and_down_without_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--data-dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert "not running" in capsys.readouterr().out


def test_cli_up_without_java_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _which_only(monkeypatch)
    assert cli.main(["up", "--port", "1", "--data-dir", str(tmp_path)]) == 2
    assert "error: java not found" in capsys.readouterr().err


def test_cli_fetch_reports_cached_jars(capsys: pytest.CaptureFixture[str]) -> None:
    _complete_cache(libs_dir())
    assert cli.main(["fetch"]) == 0
    assert "already cached" in capsys.readouterr().out
