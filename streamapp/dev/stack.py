"""Start and stop the embedded stack: the broker (Apache Kafka, or Tansu) and moto S3.

Processes are started in their own session and recorded in pid files, so `dev down`
stops exactly what `dev up` started, and nothing else, even from another shell.
Apache Kafka keeps its log under the state directory between `dev down` and `dev up`;
`dev down --wipe` deletes it together with the workers' local table state, so the two
never disagree (a worker whose state is ahead of its changelog would otherwise have
to rebuild it: `streamapp.runtime.recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamapp.dev.brokers import BrokerKind, choose, start_embedded
from streamapp.dev.processes import (
    StackError,
    alive,
    free_port,
    stop_process,
    stop_processes,
    wait_tcp,
)
from streamapp.settings import DEV_ENV_FILE

__all__ = ["DevStack", "StackEnv", "StackError", "free_port", "start_s3", "stop_process"]

STATE_DIR = DEV_ENV_FILE.parent
DEV_S3_KEY = "streamapp-dev"
DEV_S3_SECRET = "streamapp-dev-secret"
DEV_BUCKET = "streamapp-archive"
DEV_PREFIX = "archive"
DEV_REGION = "us-east-1"


def start_s3(port: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_tcp(port, process, "moto S3 server")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return process
        time.sleep(0.1)
    raise StackError("moto S3 server did not answer HTTP")


@dataclass(frozen=True, slots=True)
class StackEnv:
    """Connection settings of a running embedded stack."""

    kafka_bootstrap_servers: str
    s3_endpoint: str
    replication_factor: int = 1
    broker: str = "kafka"

    def as_env(self) -> dict[str, str]:
        return {
            "STREAMAPP_BROKER": self.broker,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            "EMBEDDED_STACK": "true",
            "S3_ENDPOINT": self.s3_endpoint,
            "S3_BUCKET": DEV_BUCKET,
            "S3_KEY": DEV_S3_KEY,
            "S3_SECRET": DEV_S3_SECRET,
            "S3_REGION": DEV_REGION,
            "S3_PREFIX": DEV_PREFIX,
        }


class DevStack:
    """The embedded stack of one state directory, tracked by pid files."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.env_file = state_dir / DEV_ENV_FILE.name
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"
        self.broker_dir = state_dir / "broker"
        self.info_file = state_dir / "stack.json"

    def _pid(self, name: str) -> int | None:
        path = self.pid_dir / f"{name}.pid"
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def _names(self) -> list[str]:
        return sorted(path.stem for path in self.pid_dir.glob("*.pid"))

    def info(self) -> dict[str, object]:
        """What `up` started: broker kind, version, broker count (empty when never up)."""
        try:
            return json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return {}

    def status(self) -> dict[str, int | None]:
        """Pid of each recorded part that is running, None for the others."""
        names = self._names() or ["broker", "s3"]
        return {name: self._pid(name) for name in names}

    def read_env(self) -> dict[str, str]:
        if not self.env_file.exists():
            return {}
        pairs = (
            line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line
        )
        return {key.strip(): value.strip() for key, value in pairs}

    def up(
        self,
        topics_file: Path | None,
        broker: BrokerKind,
        jars_cache: Path,
        brokers: int = 1,
    ) -> StackEnv:
        """Start whatever is not running, create the bucket and topics, write dev.env."""
        current = self.read_env()
        running = self.status()
        if current and running and all(running.values()):
            return StackEnv(
                current["KAFKA_BOOTSTRAP_SERVERS"],
                current["S3_ENDPOINT"],
                int(current.get("KAFKA_REPLICATION_FACTOR", "1")),
                current.get("STREAMAPP_BROKER", "kafka"),
            )
        self.down()
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        try:
            started = time.monotonic()
            embedded = start_embedded(broker, self.broker_dir, jars_cache, brokers)
            ready_s = time.monotonic() - started
            for name, pid in embedded.pids().items():
                (self.pid_dir / f"{name}.pid").write_text(str(pid))
            s3_port = free_port()
            s3 = start_s3(s3_port, self.log_dir / "s3.log")
            (self.pid_dir / "s3.pid").write_text(str(s3.pid))
            env = StackEnv(
                embedded.bootstrap,
                f"http://127.0.0.1:{s3_port}",
                embedded.replication_factor,
                embedded.kind,
            )
            asyncio.run(provision(env, topics_file))
        except BaseException:
            self.down()
            raise
        lines = [f"{key}={value}" for key, value in env.as_env().items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        info = {
            "fallback": choose(broker, jars_cache)[1],
            "broker": embedded.kind,
            "version": embedded.version,
            "brokers": brokers,
            "ready_s": round(ready_s, 1),
        }
        self.info_file.write_text(json.dumps(info) + "\n")
        return env

    def down(self, wipe: bool = False, data_dir: Path | None = None) -> list[str]:
        """Stop exactly the processes recorded in pid files; idempotent. `wipe` also
        deletes the broker's log and the workers' local state (`data_dir`)."""
        recorded = {name: self._pid(name) for name in self._names()}
        running = {name: pid for name, pid in recorded.items() if pid is not None}
        done = stop_processes(list(running.values()), timeout=30.0)
        stopped = [name for name, was_stopped in zip(running, done, strict=True) if was_stopped]
        for name in recorded:
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        if wipe:
            shutil.rmtree(self.broker_dir, ignore_errors=True)
            self.info_file.unlink(missing_ok=True)
            if data_dir is not None:
                shutil.rmtree(data_dir, ignore_errors=True)
        return stopped


async def provision(env: StackEnv, topics_file: Path | None) -> None:
    """Create the bucket and the declared topics on a fresh stack."""
    from streamapp import s3
    from streamapp.runtime import topics
    from streamapp.settings import Settings

    values: dict[str, Any] = {key.lower(): value for key, value in env.as_env().items()}
    settings = Settings(**values)
    await s3.ensure_bucket(settings)
    if topics_file is not None:
        specs = topics.load_specs(topics_file, settings)
        await topics.apply(settings, specs)
