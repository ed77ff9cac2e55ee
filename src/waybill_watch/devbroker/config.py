"""Broker configuration: ``server.properties`` (one node or a static quorum), cluster ids, ports."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from waybill_watch.localproc import free_port as free_port
from waybill_watch.localproc import port_is_free as port_is_free

if TYPE_CHECKING:
    from waybill_watch.kafka_client import KafkaConnection

HOST = "127.0.0.1"
NODE_ID = 1
#: The listener brokers (and the controller) use among themselves when clients get SASL_SSL.
INTERNAL_LISTENER = "INTERNAL"


@dataclass(frozen=True)
class SaslSslListener:
    """A broker whose client listener is SASL_SSL with SCRAM logins (tests of TLS + SASL).

    ``certfile``/``keyfile``: the broker's PEM certificate (chain) and unencrypted PKCS#8
    key, valid for 127.0.0.1; ``cafile``: the CA clients verify it with. ``users``: SCRAM
    credentials (name → password) written at format time (``kafka-storage format
    --add-scram``), so they exist before the broker serves anyone. Brokers and the controller
    talk PLAINTEXT among themselves on a second loopback listener.
    """

    certfile: Path
    keyfile: Path
    cafile: Path
    users: Mapping[str, str] = field(default_factory=dict)
    mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"

    def connection(
        self, bootstrap: str, user: str | None = None, password: str | None = None
    ) -> KafkaConnection:
        """A client connection as ``user`` (default: the first user, with its password)."""
        from pydantic import SecretStr

        from waybill_watch.kafka_client import KafkaConnection

        name = user or next(iter(self.users))
        secret = password if password is not None else self.users[name]
        return KafkaConnection(
            bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=self.mechanism,
            sasl_username=name,
            sasl_password=SecretStr(secret),
            ssl_cafile=self.cafile,
        )

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating the users."""
        arguments: list[str] = []
        for name, password in self.users.items():
            if any(c in name + password for c in ",[]="):
                raise ValueError("SCRAM user names and passwords here may not use , [ ] =")
            arguments += ["--add-scram", f"{self.mechanism}=[name={name},password={password}]"]
        return arguments


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
    secure: SaslSslListener | None = None,
    internal_port: int | None = None,
    keystore: Path | None = None,
) -> str:
    """A combined broker+controller node of a static quorum (no ``--standalone``).

    ``voters`` maps every node id of the cluster to its controller port (default: this node
    alone, a single-node broker). Replication factors and ISR minimums follow the cluster's
    size (:func:`replication_for`), for internal topics and for topics created without one.
    Topic auto-creation stays off: the app creates its topics with the right partition
    counts, and a typo should fail instead of silently creating a 1-partition topic.

    ``secure``: clients get a SASL_SSL listener on ``port`` (``keystore``: a PEM file with the
    broker's key and certificate), brokers a PLAINTEXT one on ``internal_port``.
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
    }
    if secure is not None:
        if internal_port is None or keystore is None:
            raise ValueError("a SASL_SSL listener needs an internal port and a keystore")
        internal = f"{INTERNAL_LISTENER}://{HOST}:{internal_port}"
        mechanism = secure.mechanism.lower()
        settings |= {
            "listeners": f"SASL_SSL://{HOST}:{port},{internal},CONTROLLER://{HOST}:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{HOST}:{port},{internal}",
            "listener.security.protocol.map": (
                f"SASL_SSL:SASL_SSL,{INTERNAL_LISTENER}:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": INTERNAL_LISTENER,
            "sasl.enabled.mechanisms": secure.mechanism,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": secure.mechanism,
            f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.client.auth": "none",
        }
    settings |= {
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
