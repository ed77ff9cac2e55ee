"""Broker configuration: ``server.properties`` (one node or a static quorum), cluster ids, ports."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path

from waybill_watch.localproc import free_port as free_port
from waybill_watch.localproc import port_is_free as port_is_free

HOST = "127.0.0.1"
NODE_ID = 1


def replication_for(cluster_size: int) -> tuple[int, int]:
    """Replication factor and ``min.insync.replicas`` for a cluster of ``cluster_size`` nodes.

    Kafka's defaults (3 / 2) from three nodes on: one node may be down and acks=all writes
    still succeed. Smaller clusters get what they can hold (1 / 1 on one node, else internal
    topics and transactions would never get their topics).
    """
    if cluster_size < 1:
        raise ValueError(f"a cluster needs at least one node, got {cluster_size}")
    factor = min(3, cluster_size)
    return factor, max(1, factor - 1)


def quorum_voters(voters: Mapping[int, int]) -> str:
    """``controller.quorum.voters`` for node id → controller port (static quorum)."""
    return ",".join(f"{node}@{HOST}:{port}" for node, port in sorted(voters.items()))


def render_server_properties(
    port: int,
    controller_port: int,
    log_dir: Path,
    *,
    node_id: int = NODE_ID,
    voters: Mapping[int, int] | None = None,
) -> str:
    """A combined broker+controller node of a static quorum (no ``--standalone``).

    ``voters`` maps every node id of the cluster to its controller port (default: this node
    alone, a single-node broker). Replication factors and ISR minimums follow the cluster's
    size (:func:`replication_for`), for internal topics and for topics created without one.
    Topic auto-creation stays off: the app creates its topics with the right partition
    counts, and a typo should fail instead of silently creating a 1-partition topic.
    """
    voters = {node_id: controller_port} if voters is None else dict(voters)
    if voters.get(node_id) != controller_port:
        raise ValueError(
            f"node {node_id} with controller port {controller_port} is not among the "
            f"voters {quorum_voters(voters)}"
        )
    factor, min_isr = replication_for(len(voters))
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node_id,
        "controller.quorum.voters": quorum_voters(voters),
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "default.replication.factor": factor,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": factor,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": factor,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": 0,
        # Compaction (changelog topics) allocates this on the heap at start; Kafka's 128 MiB
        # default is half of a small node's -Xmx and far more than a dev broker needs.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
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
