"""The embedded broker: Apache Kafka by default, Tansu where Java or Maven is missing.

`dev up`, the test fixtures, the benchmarks and the chaos runs all start their broker
through `start_embedded`, so they run on the same broker, chosen the same way.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from streamapp.dev import kafka
from streamapp.dev.processes import StackError, free_port, stop_process
from streamapp.dev.tansu import start_tansu, tansu_version

logger = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu"]
KINDS: tuple[BrokerKind, ...] = ("kafka", "tansu")


class EmbeddedBroker(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def bootstrap(self) -> str: ...

    @property
    def replication_factor(self) -> int: ...

    def pids(self) -> dict[str, int]: ...

    def stop(self) -> None: ...


@dataclass(slots=True)
class TansuBroker:
    """One Tansu broker (memory storage: a restart forgets every record)."""

    directory: Path
    advertised_port: int | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    kind = "tansu"
    replication_factor = 1

    @property
    def version(self) -> str:
        return tansu_version()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    def start(self) -> TansuBroker:
        self.process = start_tansu(self.port, self.directory / "broker.log", self.advertised_port)
        return self

    def pids(self) -> dict[str, int]:
        return {"tansu": self.process.pid} if self.process else {}

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process.pid)
            self.process = None


def choose(requested: BrokerKind, jars_cache: Path) -> tuple[BrokerKind, str | None]:
    """The broker to start and, when it is not the one asked for, the one line why."""
    if requested == "tansu":
        return "tansu", None
    missing = kafka.missing_requirement(jars_cache)
    if missing is None:
        return "kafka", None
    return "tansu", f"Apache Kafka needs Java 17 and Maven ({missing}): using Tansu instead"


def start_embedded(
    requested: BrokerKind,
    directory: Path,
    jars_cache: Path,
    brokers: int = 1,
    advertised_ports: dict[int, int] | None = None,
) -> EmbeddedBroker:
    """Start the chosen broker (or cluster) with its state under `directory`."""
    kind, why = choose(requested, jars_cache)
    if why:
        logger.debug("event=broker_fallback reason=%r", why)  # the CLI prints it as a note
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "tansu":
        if brokers != 1:
            raise StackError("Tansu runs a single broker; --brokers needs Apache Kafka")
        return TansuBroker(directory, (advertised_ports or {}).get(1)).start()
    cluster = kafka.KafkaCluster(directory, jars_cache, brokers, advertised_ports or {})
    return cluster.start()
