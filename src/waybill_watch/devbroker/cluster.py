"""A local multi-node KRaft cluster on 127.0.0.1: fault tests that kill a broker need one.

Every node is a combined broker+controller (a ``LocalBroker``) with its own ports and data
dir under one root; the quorum is static (``controller.quorum.voters`` names every node), so
all nodes are formatted with the same cluster id and none with ``--standalone``. With three
nodes, internal topics and topics created without a replication factor get 3 replicas and
``min.insync.replicas`` 2 (``config.replication_for``): one node may be down while acks=all
writes and transactions go on.

    with LocalCluster() as cluster:        # three nodes
        bootstrap = cluster.bootstrap      # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        cluster.kill(1)                    # SIGKILL node index 1 (node id 2)
        cluster.restart(1)                 # same ports and data: it rejoins the quorum
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from waybill_watch.devbroker import BrokerError
from waybill_watch.devbroker.broker import START_TIMEOUT_S, LocalBroker
from waybill_watch.devbroker.config import free_port, new_cluster_id
from waybill_watch.devbroker.ready import wait_until_ready

#: Three nodes on a shared 2-core laptop: a small heap each (the dev broker uses 512m).
CLUSTER_HEAP = "256m"


class LocalCluster:
    """``size`` KRaft nodes (ids 1..size) forming one cluster; nodes are addressed by index.

    ``data_dir=None`` uses a temporary root that ``stop()`` deletes; a given root is kept.
    Each node's data stays between ``kill`` and ``restart`` (a crash, not a new node).
    """

    def __init__(
        self, size: int = 3, data_dir: Path | None = None, *, heap: str = CLUSTER_HEAP
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one node, got {size}")
        self.size = size
        self.heap = heap
        self._temporary = data_dir is None
        self.data_dir: Path | None = None if data_dir is None else Path(data_dir).resolve()
        self.nodes: list[LocalBroker] = []

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated (clients survive any one down)."""
        if not self.nodes:
            raise BrokerError("cluster not started")
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Launch every node, then wait until the metadata lists all of them and a topic
        replicated on all of them can be created; return the bootstrap string."""
        if self.nodes:
            raise BrokerError("cluster already started")
        root = self._prepare_root()
        ports: set[int] = set()
        clients: list[int] = []
        voters: dict[int, int] = {}
        for node_id in range(1, self.size + 1):
            clients.append(free_port(exclude=frozenset(ports)))
            ports.add(clients[-1])
            voters[node_id] = free_port(exclude=frozenset(ports))
            ports.add(voters[node_id])
        cluster_id = new_cluster_id()
        self.nodes = [
            LocalBroker(
                clients[index],
                root / f"node-{node_id}",
                heap=self.heap,
                controller_port=voters[node_id],
                node_id=node_id,
                voters=voters,
                cluster_id=cluster_id,
            )
            for index, node_id in enumerate(sorted(voters))
        ]
        try:
            for node in self.nodes:
                node.launch()
            self._wait(self.bootstrap, timeout, probe_topic=True, nodes=self.nodes)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based; node id ``index + 1``); its data is kept."""
        self._node(index).kill()

    def restart(self, index: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start node ``index`` again on its ports and data; return once the metadata lists
        every node again (it registered with the controller and caught up)."""
        node = self._node(index)
        node.launch()
        self._wait(node.bootstrap, timeout, probe_topic=False, nodes=[node])

    def stop(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after a grace period); safe to call twice.

        All nodes are signalled first: stopped one by one, the last ones would wait for a
        quorum that is already gone."""
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self._temporary and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _node(self, index: int) -> LocalBroker:
        if not 0 <= index < len(self.nodes):
            raise BrokerError(f"no node with index {index} (cluster of {len(self.nodes)})")
        return self.nodes[index]

    def _prepare_root(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="waybill-watch-cluster-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def _wait(
        self, bootstrap: str, timeout: float, *, probe_topic: bool, nodes: list[LocalBroker]
    ) -> None:
        def check() -> None:
            for node in nodes:
                node.check_alive()

        try:
            wait_until_ready(
                bootstrap, timeout, probe_topic=probe_topic, check=check, brokers=self.size
            )
        except BrokerError as exc:
            # The node that died (or, if none did, the first) says why in its log.
            dead = [node for node in nodes if not node.running] or nodes[:1]
            raise BrokerError(dead[0].failure_message(exc)) from None
