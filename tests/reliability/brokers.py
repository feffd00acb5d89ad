"""The chaos run's brokers: every connection to each node goes through a cuttable proxy.

On Apache Kafka, a KRaft cluster of `size` nodes whose client, replication and
controller traffic all cross proxies, so cutting one node's proxies isolates it as a
network partition would (its peers fence it, leadership moves); killing a node is a
SIGKILL of its JVM, restarted over the same log. On Tansu, one broker behind one proxy
(it cannot restart without losing its data, so it is only ever cut).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from streamapp.dev.brokers import TansuBroker
from streamapp.dev.kafka import KafkaCluster
from streamapp.dev.stack import free_port
from tests.conftest import STACK_SETTINGS
from tests.support.tcp_proxy import TcpProxy


class ProxiedBrokers:
    """The broker(s) of a chaos run, with the faults the run injects."""

    def __init__(self, directory: Path, size: int) -> None:
        self.kind = STACK_SETTINGS.streamapp_broker
        self.size = size if self.kind == "kafka" else 1
        self.directory = directory
        self.proxies: dict[int, list[TcpProxy]] = {}
        self.cluster: KafkaCluster | None = None
        self.tansu: TansuBroker | None = None

    @property
    def bootstrap(self) -> str:
        broker = self.cluster or self.tansu
        assert broker is not None
        return broker.bootstrap

    @property
    def replication_factor(self) -> int:
        return self.cluster.replication_factor if self.cluster else 1

    def start(self) -> ProxiedBrokers:
        if self.kind == "tansu":
            front = free_port()
            self.tansu = TansuBroker(self.directory, advertised_port=front).start()
            self.proxies[1] = [TcpProxy("127.0.0.1", self.tansu.port, port=front).start()]
            return self
        fronts = {node: free_port() for node in range(1, self.size + 1)}
        controller_fronts = {node: free_port() for node in range(1, self.size + 1)}
        self.cluster = KafkaCluster(
            self.directory,
            STACK_SETTINGS.kafka_jars_cache,
            self.size,
            advertised_ports=fronts,
            controller_fronts=controller_fronts,
        )
        self.cluster.layout()
        for node in self.cluster.nodes:
            self.proxies[node.node_id] = [
                TcpProxy("127.0.0.1", node.port, port=fronts[node.node_id]).start(),
                TcpProxy(
                    "127.0.0.1", node.controller_port, port=controller_fronts[node.node_id]
                ).start(),
            ]
        self.cluster.start()
        return self

    def cut(self, node_id: int) -> None:
        for proxy in self.proxies[node_id]:
            proxy.cut()

    def restore(self, node_id: int) -> None:
        for proxy in self.proxies[node_id]:
            proxy.restore()

    def kill(self, node_id: int) -> None:
        """SIGKILL one node's JVM (Apache Kafka only)."""
        assert self.cluster is not None, "only Apache Kafka nodes are killed"
        self.cluster.stop_node(self.cluster.nodes[node_id - 1], kill=True)

    def restart(self, node_id: int) -> None:
        assert self.cluster is not None
        self.cluster.start_node(self.cluster.nodes[node_id - 1])

    def leaders(self, topics: list[str]) -> Counter[int]:
        """How many partitions of `topics` each node leads now."""
        return asyncio.run(_leaders(self.bootstrap, topics))

    def stop(self) -> None:
        for proxies in self.proxies.values():
            for proxy in proxies:
                proxy.cut()
        if self.cluster is not None:
            self.cluster.stop()
        if self.tansu is not None:
            self.tansu.stop()


async def _leaders(bootstrap: str, topics: list[str]) -> Counter[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return Counter(
        partition["leader"]
        for topic in described
        for partition in topic["partitions"]
        if partition["leader"] >= 0
    )
