"""A local Apache Kafka broker (KRaft) run from Maven Central jars: one node, or a
multi-node cluster on loopback for fault tests (``LocalCluster``).

Why: development, the demo and the integration tests need a real Kafka without
Docker. The jars are resolved once with Maven into a cache outside the repository;
the broker runs as a plain ``java`` process in its own process group.

The Kafka version is recorded here and nowhere else; Maven gets it as a property.
"""

from __future__ import annotations

KAFKA_VERSION = "4.3.1"
"""Apache Kafka broker version (Maven artifact ``org.apache.kafka:kafka_2.13``)."""

LOG4J_VERSION = "2.25.2"
"""Log4j2 version for the broker's SLF4J 1.7 binding (what the Kafka 4.x tarball ships)."""

MIN_JAVA = 17
"""Kafka 4.x brokers need Java 17 or newer."""


class BrokerError(RuntimeError):
    """A local broker could not be fetched, started or reached; the message says why."""


# The submodules read the constants above, so they are imported after them.
from waybill_watch.devbroker.broker import LocalBroker  # noqa: E402
from waybill_watch.devbroker.cluster import LocalCluster  # noqa: E402
from waybill_watch.devbroker.config import SaslSslListener  # noqa: E402
from waybill_watch.devbroker.jars import cache_root, ensure_jars, is_complete, libs_dir  # noqa: E402
from waybill_watch.devbroker.ready import wait_until_ready, wait_until_ready_async  # noqa: E402

__all__ = [
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "MIN_JAVA",
    "BrokerError",
    "LocalBroker",
    "LocalCluster",
    "SaslSslListener",
    "cache_root",
    "ensure_jars",
    "is_complete",
    "libs_dir",
    "wait_until_ready",
    "wait_until_ready_async",
]
