"""`streamapp dev up/down/status` start and stop exactly their own processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamapp.dev.kafka import kafka_version
from streamapp.runtime.topics import load_specs
from tests.conftest import STACK_SETTINGS
from tests.features.test_worker import WINDOW_ENV, read_features, send, simulated

ROOT = Path(__file__).resolve().parents[2]


def streamapp(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "S3_"))}
    env["STREAMAPP_BROKER"] = STACK_SETTINGS.streamapp_broker
    return subprocess.run(
        [sys.executable, "-m", "streamapp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def recorded_pids(state: Path) -> list[int]:
    return [int(path.read_text()) for path in sorted((state / ".streamapp/pids").glob("*.pid"))]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_dev_up_status_down_leave_no_process(tmp_path: Path) -> None:
    (tmp_path / "topics.yaml").write_text((ROOT / "topics.yaml").read_text())
    up = streamapp(tmp_path, "dev", "up")
    assert up.returncode == 0, up.stderr
    env = dict(line.split("=", 1) for line in (tmp_path / ".streamapp/dev.env").read_text().split())
    assert set(env) >= {
        "KAFKA_BOOTSTRAP_SERVERS",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_KEY",
        "S3_SECRET",
        "S3_REGION",
        "S3_PREFIX",
    }
    assert env["S3_SECRET"] not in up.stdout + up.stderr
    pids = recorded_pids(tmp_path)
    assert len(pids) >= 2 and all(alive(pid) for pid in pids)
    again = streamapp(tmp_path, "dev", "up")
    assert again.returncode == 0
    assert recorded_pids(tmp_path) == pids
    listed = streamapp(tmp_path, "topics", "list")
    assert listed.returncode == 0 and "telemetry.dlq\t8" in listed.stdout
    status = streamapp(tmp_path, "dev", "status").stdout
    assert "running" in status
    if STACK_SETTINGS.streamapp_broker == "kafka":
        assert f"broker: Apache Kafka {kafka_version()}" in status
    down = streamapp(tmp_path, "dev", "down")
    assert down.returncode == 0 and "s3" in down.stdout
    assert not any(alive(pid) for pid in pids)
    assert not (tmp_path / ".streamapp/dev.env").exists()
    assert "nothing was running" in streamapp(tmp_path, "dev", "down").stdout
    assert "stopped" in streamapp(tmp_path, "dev", "status").stdout


def dev_env(state: Path) -> dict[str, str]:
    """What a worker started in `state` reads from .streamapp/dev.env."""
    text = (state / ".streamapp/dev.env").read_text()
    return dict(line.split("=", 1) for line in text.split())


@pytest.mark.integration
def test_dev_down_up_then_worker_starts_cleanly_and_wipe_clears_both(
    tmp_path: Path, start_worker
) -> None:
    (tmp_path / "topics.yaml").write_text((ROOT / "topics.yaml").read_text())
    assert streamapp(tmp_path, "dev", "up").returncode == 0
    data_dir = tmp_path / ".streamapp/data"
    env = {**dev_env(tmp_path), **WINDOW_ENV}
    try:
        first = start_worker(env, name="before", data_dir=data_dir)
        first.wait_ready(timeout=120)
        send(env, simulated(assets=8, count=8 * 30))
        assert read_features(env, 8)
        time.sleep(3)  # table state and changelog offsets committed
        first.stop()
        listed = streamapp(tmp_path, "topics", "list").stdout.split()[::2]
        declared = {spec.name for spec in load_specs(ROOT / "topics.yaml")}
        assert set(listed) - {"__consumer_offsets"} == declared  # every topic is declared
        assert streamapp(tmp_path, "dev", "down").returncode == 0
        assert streamapp(tmp_path, "dev", "up").returncode == 0

        env = {**env, **dev_env(tmp_path)}
        again = start_worker(env, name="after", data_dir=data_dir)
        again.wait_ready(timeout=120)
        log = again.log_tail(2000)
        assert "ConsistencyError" not in log
        if STACK_SETTINGS.streamapp_broker == "kafka":
            assert "stale_table_state" not in log  # the broker kept the changelog
        else:
            assert "event=stale_table_state_rebuilt" in log  # Tansu forgot; rebuilt
        again.stop()
    finally:
        wiped = streamapp(tmp_path, "dev", "down", "--wipe")
    assert wiped.returncode == 0 and "wiped" in wiped.stdout
    assert not (tmp_path / ".streamapp/broker").exists()
    assert not data_dir.exists()
