"""Embedded Apache Kafka: KRaft nodes (broker and controller in one JVM) on loopback.

The jars come from `kafka-pom.xml` (one pinned version), resolved by Maven once into
a cache directory; every later start and every console tool runs from that cache with
no network. Each node keeps its log under its own directory, formatted once with the
cluster's id, so a cluster stopped and started again over the same directory has
every topic, record and committed offset it had (what `dev down` / `dev up` rely on).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streamapp.dev.processes import (
    StackError,
    free_port,
    stop_process,
    stop_processes,
    wait_tcp,
)

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("kafka-pom.xml")
HEAP = "512m"  # per node: the bound, and plenty for a dev cluster
READY_TIMEOUT_S = 90.0
MAVEN_TIMEOUT_S = 900.0
# Main classes of Kafka's own scripts (bin/kafka-*.sh), for `.venv/bin` wrappers.
TOOLS = {
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
}
LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: {level}
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
"""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if found is None:
        raise StackError(f"{pom} names no <kafka.version>")
    return found.group(1).strip()


def jars_dir(cache: Path) -> Path:
    """Where the jars of the pinned version lie once resolved."""
    return cache / f"kafka-{kafka_version()}" / "libs"


def missing_requirement(cache: Path) -> str | None:
    """Why Apache Kafka cannot start here, or None: Java always, Maven until cached."""
    if shutil.which("java") is None:
        return "java is not on PATH"
    if not (jars_dir(cache) / ".complete").exists() and shutil.which("mvn") is None:
        return f"mvn is not on PATH and the Kafka jars are not cached in {cache}"
    return None


def ensure_jars(cache: Path) -> Path:
    """The directory of the pinned version's jars, resolving them with Maven if needed.

    Resolved into a scratch directory and renamed, so an interrupted download never
    leaves a half-filled cache that later starts would trust.
    """
    target = jars_dir(cache)
    if (target / ".complete").exists():
        return target
    if shutil.which("mvn") is None:
        raise StackError(f"mvn is not on PATH and the Kafka jars are not cached in {cache}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    logger.info("event=kafka_jars_resolving version=%s cache=%s", kafka_version(), cache)
    command = [
        "mvn",
        "-B",
        "-q",
        "--no-transfer-progress",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={scratch}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StackError(f"Maven did not resolve the Kafka jars within {exc.timeout:.0f}s") from exc
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise StackError("Maven could not resolve the Kafka jars: " + " | ".join(tail))
    (scratch / ".complete").write_text(kafka_version() + "\n")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return target


def java_command(jars: Path, main_class: str, *args: str, heap: str = HEAP) -> list[str]:
    """A JVM running one of Kafka's main classes from the cached jars."""
    return [
        "java",
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        "-cp",
        f"{jars}/*",
        main_class,
        *args,
    ]


@dataclass(slots=True)
class KafkaNode:
    """One combined broker+controller: its id, ports and directory."""

    node_id: int
    port: int  # client and replication listener
    controller_port: int
    directory: Path
    advertised_port: int | None = None  # a proxy in front of `port` (chaos tests)
    process: subprocess.Popen | None = None

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"


@dataclass(slots=True)
class KafkaCluster:
    """An Apache Kafka cluster of `size` KRaft nodes under one directory.

    `directory/cluster.json` keeps the cluster id and the ports, so starting the same
    directory again gives the same cluster (ports are reused when still free).
    """

    directory: Path
    cache: Path
    size: int = 1
    advertised_ports: Mapping[int, int] = field(default_factory=dict)
    # Where the other nodes reach a node's controller (proxies, in chaos runs).
    controller_fronts: Mapping[int, int] = field(default_factory=dict)
    log_level: str = "WARN"
    nodes: list[KafkaNode] = field(default_factory=list)

    kind = "kafka"

    @property
    def version(self) -> str:
        return kafka_version()

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(self.size, 3)

    def pids(self) -> dict[str, int]:
        return {f"kafka-{node.node_id}": node.process.pid for node in self.nodes if node.process}

    def layout(self) -> str:
        """The cluster id; fills `nodes` from cluster.json or with fresh ports (so a
        caller can put proxies in front of them before `start`)."""
        if self.nodes:
            return json.loads((self.directory / "cluster.json").read_text())["cluster_id"]
        meta = self.directory / "cluster.json"
        known = json.loads(meta.read_text()) if meta.exists() else {}
        if known and len(known["nodes"]) != self.size:
            raise StackError(
                f"{self.directory} holds a {len(known['nodes'])}-broker cluster, not "
                f"{self.size}: stop it and wipe it first (`streamapp dev down --wipe`)"
            )
        cluster_id = known.get("cluster_id") or _random_cluster_id()
        ports = known.get("nodes") or [{} for _ in range(self.size)]
        self.nodes = []
        for index, saved in enumerate(ports):
            node_id = index + 1
            self.nodes.append(
                KafkaNode(
                    node_id,
                    _reuse_or_new(saved.get("port")),
                    _reuse_or_new(saved.get("controller_port")),
                    self.directory / f"node-{node_id}",
                    self.advertised_ports.get(node_id),
                )
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        layout = {
            "cluster_id": cluster_id,
            "version": self.version,
            "nodes": [
                {"port": node.port, "controller_port": node.controller_port} for node in self.nodes
            ],
        }
        meta.write_text(json.dumps(layout, indent=2) + "\n")
        return cluster_id

    def _config(self, node: KafkaNode) -> str:
        voters = ",".join(
            f"{n.node_id}@127.0.0.1:{self.controller_fronts.get(n.node_id, n.controller_port)}"
            for n in self.nodes
        )
        replicas = self.replication_factor
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:"
            f"{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{node.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.log_dir,
            "num.partitions": 8,
            "default.replication.factor": replicas,
            "min.insync.replicas": 2 if replicas >= 3 else 1,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": 2 if replicas >= 3 else 1,
            "unclean.leader.election.enable": "false",
            # A new group's first member starts at once (the default waits 3 s).
            "group.initial.rebalance.delay.ms": 0,
            # Dead letters copy input records of up to 8 MiB byte for byte.
            "message.max.bytes": 8 * 1024 * 1024 + 64 * 1024,
            "replica.fetch.max.bytes": 8 * 1024 * 1024 + 64 * 1024,
            # A follower that stops fetching leaves the ISR after 10 s, not 30.
            "replica.lag.time.max.ms": 10000,
            "auto.create.topics.enable": "true",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format(self, jars: Path, node: KafkaNode, cluster_id: str) -> None:
        if (node.log_dir / "meta.properties").exists():
            return
        command = java_command(
            jars,
            "kafka.tools.StorageTool",
            "format",
            # `=` keeps an id that starts with "-" (base64 allows it) an argument.
            f"--cluster-id={cluster_id}",
            f"--config={node.config_path}",
            "--ignore-formatted",
            heap="256m",
        )
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"kafka-storage format failed: {done.stdout}{done.stderr}".strip())

    def start(self) -> KafkaCluster:
        """Start every node and wait until the cluster serves metadata for all of them."""
        jars = ensure_jars(self.cache)
        cluster_id = self.layout()
        log4j = self.directory / "log4j2.yaml"
        log4j.write_text(LOG4J2.format(level=self.log_level))
        started = time.monotonic()
        try:
            for node in self.nodes:
                node.directory.mkdir(parents=True, exist_ok=True)
                node.config_path.write_text(self._config(node))
                self._format(jars, node, cluster_id)
            for node in self.nodes:
                self.start_node(node, jars, log4j)
            for node in self.nodes:
                wait_tcp(node.port, node.process, f"Kafka node {node.node_id}", READY_TIMEOUT_S)
            self.wait_ready(READY_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "event=kafka_ready version=%s brokers=%d ready_s=%.1f",
            self.version,
            self.size,
            time.monotonic() - started,
        )
        return self

    def start_node(
        self, node: KafkaNode, jars: Path | None = None, log4j: Path | None = None
    ) -> None:
        """(Re)start one node's JVM over its existing directory."""
        jars = jars or ensure_jars(self.cache)
        log4j = log4j or self.directory / "log4j2.yaml"
        command = java_command(jars, "kafka.Kafka", str(node.config_path))
        command.insert(1, f"-Dlog4j2.configurationFile={log4j}")
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAFKA_")}
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Until the metadata a node serves lists every node of the cluster."""
        import asyncio

        direct = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        asyncio.run(_wait_brokers(direct, self.size, timeout_s, self.nodes))

    def stop_node(self, node: KafkaNode, kill: bool = False) -> None:
        if node.process is None:
            return
        if kill:
            node.process.kill()
            node.process.wait()
        else:
            stop_process(node.process.pid, timeout=30.0)
        node.process = None

    def stop(self) -> None:
        running = [node for node in self.nodes if node.process is not None]
        stop_processes([node.process.pid for node in running if node.process], timeout=30.0)
        for node in running:
            node.process = None


async def _wait_brokers(bootstrap: str, size: int, timeout_s: float, nodes: list) -> None:
    """Poll metadata until it lists `size` brokers (each node is also a controller)."""
    import asyncio

    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        for node in nodes:
            if node.process is not None and node.process.poll() is not None:
                raise StackError(
                    f"Kafka node {node.node_id} exited with code {node.process.returncode}; "
                    f"see {node.log_path}"
                )
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await client.bootstrap()  # metadata from the listener itself, not via proxies
            if len(client.cluster.brokers()) >= size:
                return
        except KafkaError as exc:
            last = exc
        finally:
            await client.close()
        await asyncio.sleep(0.25)
    raise StackError(f"Kafka did not serve {size} brokers within {timeout_s:.0f}s: {last}")


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _reuse_or_new(port: int | None) -> int:
    """The saved port when it is free again, else a fresh one."""
    import socket

    if port:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return free_port()
            return port
    return free_port()


def tool_wrapper(jars: Path, main_class: str) -> str:
    """A shell script running one Kafka tool from the cached jars (resolving them if gone)."""
    return (
        "#!/bin/sh\n"
        "# Apache Kafka's own tool, from the jars of streamapp/dev/kafka-pom.xml.\n"
        f'JARS="{jars}"\n'
        f'[ -f "$JARS/.complete" ] || JARS="$({sys.executable} -m streamapp.dev.kafka jars)" '
        "|| exit 1\n"
        f'exec java -Xmx512m -cp "$JARS/*" {main_class} "$@"\n'
    )


def install_tools(bin_dir: Path, cache: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Write the console-tool wrappers into `bin_dir` (a virtual environment's bin)."""
    written = []
    for name, main_class in TOOLS.items():
        path = bin_dir / name
        path.write_text(tool_wrapper(jars_dir(cache), main_class))
        path.chmod(0o755)
        written.append(path)
    echo(f"installed {', '.join(p.name for p in written)} in {bin_dir}")
    return written


if __name__ == "__main__":  # `python -m streamapp.dev.kafka jars`: the wrappers' helper
    from streamapp.settings import get_settings

    if sys.argv[1:] != ["jars"]:
        sys.exit("usage: python -m streamapp.dev.kafka jars")
    try:
        print(ensure_jars(get_settings().kafka_jars_cache))
    except StackError as exc:
        sys.exit(f"error: {exc}")
