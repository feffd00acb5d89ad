"""Kafka's own console tools from `.venv/bin`, exactly as the README's quickstart runs them.

No aiokafka on the test's side: `kafka-console-producer` sends telemetry and
extracted-features, `kafka-console-consumer` reads `rul-predictions` from a worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamapp.dev.kafka import TOOLS
from streamapp.rul.training import replay as cmapss_replay
from streamapp.rul.training.data import CMAPSS_SIGNALS
from tests.conftest import CMAPSS, settings_from_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make` (or `streamapp dev tools`) installs it")
    return str(path)


@pytest.mark.skipif(shutil.which("java") is None, reason="Kafka's console tools need Java")
def test_console_producer_and_consumer_carry_records_through_a_worker(
    isolated_env: dict[str, str], start_worker
) -> None:
    assert set(TOOLS) <= {path.name for path in BIN.iterdir()}
    env = {**isolated_env, "WINDOW_KIND": "cycle"}
    settings = settings_from_env(env)
    bootstrap = settings.kafka_bootstrap_servers
    worker = start_worker(env)
    worker.wait_ready(timeout=120)

    (engine,) = cmapss_replay.engines(CMAPSS, "FD001", "test", 1, "CONSOLE-")
    printed = subprocess.run(
        [
            *(str(BIN / "streamapp"), "replay", "--data", str(CMAPSS), "--units", "1"),
            *("--asset-prefix", "CONSOLE-", "--print-only"),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    telemetry = printed.stdout
    assert telemetry.count("\n") == len(engine.series) + 1
    features = {
        f"{name}_mean": float(value)
        for name, value in zip(CMAPSS_SIGNALS, engine.series[0], strict=True)
    }
    record = {
        "asset_id": "CONSOLE-FEATURES",
        "sensor_id": "all",
        "features": features,
        "timestamp": "2026-11-22T06:00:00Z",
    }
    for topic, lines in (
        (settings.topic_telemetry, telemetry),
        (settings.topic_features, f"CONSOLE-FEATURES|{json.dumps(record)}\n"),
    ):
        sent = subprocess.run(
            [
                tool("kafka-console-producer"),
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=|",
            ],
            input=lines,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr

    expected = len(engine.series) + 1  # every cycle of the engine, and the features record
    read = subprocess.run(
        [
            tool("kafka-console-consumer"),
            "--bootstrap-server",
            bootstrap,
            "--topic",
            settings.topic_predictions,
            "--from-beginning",
            "--max-messages",
            str(expected),
            "--timeout-ms",
            "150000",
            "--formatter-property",
            "print.key=true",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert read.returncode == 0, read.stderr + worker.log_tail()
    lines = read.stdout.splitlines()
    assert len(lines) == expected, read.stderr
    keys = [line.split("\t", 1)[0] for line in lines]
    assert set(keys) == {"CONSOLE-FEATURES", engine.asset_id}
    predictions = [json.loads(line.split("\t", 1)[1]) for line in lines]
    assert all(p["rul_prediction"] >= 0 for p in predictions)
    assert {p["asset_id"] for p in predictions} == set(keys)
