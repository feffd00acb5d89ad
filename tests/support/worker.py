"""Real worker processes for integration tests (no mocks of Kafka or S3)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamapp.dev.stack import free_port, stop_process


class WorkerProcess:
    """A `streamapp worker` subprocess with its own web port and state directory."""

    def __init__(
        self,
        env: dict[str, str],
        data_dir: Path,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """`wrapper` is a command the worker's command line is appended to (it must exec it)."""
        self.env = env
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = extra_args
        self.wrapper = wrapper
        self.web_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            **self.env,
            "DATA_DIR": str(self.data_dir),
            "WEB_PORT": str(self.web_port),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "streamapp", "worker", *self.extra_args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until /health/ready says the worker has partitions and recovered tables."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"worker exited; log:\n{self.log_tail()}"
            with contextlib.suppress(OSError):
                status, body = self.get("/health/ready")
                if status == 200 and json.loads(body)["status"] == "ready":
                    return
            time.sleep(0.5)
        raise TimeoutError(f"worker not ready in {timeout}s; log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush, commit or close anything."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.alive():
            stop_process(self.process.pid, timeout=20)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""
