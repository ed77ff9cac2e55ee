"""Broker configuration: ``server.properties``, cluster ids and ports."""

from __future__ import annotations

import base64
import socket
import uuid
from pathlib import Path

HOST = "127.0.0.1"
NODE_ID = 1


def render_server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    """A combined broker+controller with a static single voter (no ``--standalone``).

    Replication factors and ISR minimums are 1 because there is one broker: with the
    defaults (3/2) consumer groups and transactions would never get their internal topics.
    Topic auto-creation stays off: the app creates its topics with the right partition
    counts, and a typo should fail instead of silently creating a 1-partition topic.
    """
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
    }
    lines = ["# Written by waybill_watch.devbroker on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a simple properties file (no continuations or escapes)."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def listener_port(properties: dict[str, str], name: str = "PLAINTEXT") -> int | None:
    """The port of listener ``name`` in a parsed ``server.properties``."""
    for listener in properties.get("listeners", "").split(","):
        prefix = f"{name}://"
        if listener.strip().startswith(prefix):
            try:
                return int(listener.rsplit(":", 1)[1])
            except (IndexError, ValueError):
                return None
    return None


def new_cluster_id() -> str:
    """A Kafka ``Uuid`` string (URL-safe base64, 22 chars) without starting a JVM.

    Like ``Uuid.randomUuid()`` it avoids a leading ``-`` (it would look like a flag)
    and the reserved all-zero / ``1`` ids.
    """
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        if not text.startswith("-") and int.from_bytes(raw, "big") > 1:
            return text


def free_port(exclude: frozenset[int] = frozenset()) -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``127.0.0.1:port`` now (as Kafka does, with reuse)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True
