"""Streaming RUL through a running worker: no model, activation, hot reload, refusal, DLQ."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamapp.cli.rul import train
from streamapp.contracts.deadletter import REASON_HEADER, parse_headers
from streamapp.rul.training.artifacts import activate, load_ensemble
from streamapp.runtime.clients import consume, produce_lines
from tests.conftest import settings_from_env
from tests.rul.synthetic import write_cmapss


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny versions (not active) trained on synthetic C-MAPSS files."""
    root = tmp_path_factory.mktemp("rul-stream")
    data = write_cmapss(root / "data", n_train=8)
    out = root / "models"
    for seed in ("1", "2"):
        args = ["--data", str(data), "--epochs", "1", "--window", "5", "--out", str(out),
                "--models", "lstm,gru,tcn",
                "--seed", seed, "--threads", "1", "--no-activate"]  # fmt: skip
        result = CliRunner().invoke(train, args)
        assert result.exit_code == 0, result.output
    return out


def feature_line(asset: str, cycle: int, names: list[str], drop: str | None = None) -> bytes:
    features = {name: 10.0 + cycle * 0.1 + i for i, name in enumerate(names) if name != drop}
    return json.dumps(
        {
            "asset_id": asset,
            "sensor_id": "S1",
            "features": features,
            "timestamp": 1_795_320_000_000 + cycle * 1000,
            "window": {
                "start": 1_795_320_000_000 + (cycle - 1) * 1000,
                "end": 1_795_320_000_000 + cycle * 1000,
                "count": 1,
            },
            "metadata": {"cycle": cycle},
        }
    ).encode()


def read(settings, topic: str, expected: int, timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    records: list = []
    while time.monotonic() < deadline:
        records = asyncio.run(_read(settings, topic))
        if len(records) >= expected:
            break
        time.sleep(1.0)
    return records


async def _read(settings, topic: str) -> list:
    return [r async for r in consume(settings, topic, True, None, idle_timeout_s=1.0)]


def metric(worker, name: str) -> str:
    return "\n".join(
        line for line in worker.get("/metrics")[1].decode().splitlines() if line.startswith(name)
    )


def test_model_lifecycle_in_a_running_worker(
    isolated_env, start_worker, trained_models, tmp_path: Path
) -> None:
    shutil.copytree(trained_models, tmp_path / "models")
    models = tmp_path / "models" / "turbofan"  # ENGINE-1's class
    versions = sorted(p.name for p in models.iterdir() if p.is_dir())
    first, second = versions
    names = load_ensemble(models / first).feature_names
    env = {**isolated_env, "MODELS_DIR": str(tmp_path / "models")}
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()

    lines = [feature_line("ENGINE-1", cycle, names) for cycle in range(1, 4)]
    asyncio.run(produce_lines(settings, settings.topic_features, lines))
    deadline = time.monotonic() + 30
    no_model = 'asset_class="turbofan",reason="no_model"} 3.0'
    while no_model not in metric(worker, "streamapp_rul_predictions_skipped"):
        assert time.monotonic() < deadline, metric(worker, "streamapp_rul")
        time.sleep(0.5)
    assert "event=no_model" in worker.log_tail(100_000)

    activate(models, first)
    deadline = time.monotonic() + 30
    while f'version="{first}"}} 1.0' not in metric(worker, "streamapp_rul_model_loaded"):
        assert time.monotonic() < deadline, metric(worker, "streamapp_rul_model_loaded")
        time.sleep(0.5)
    more = [feature_line("ENGINE-1", cycle, names) for cycle in range(4, 6)]
    more.append(feature_line("ENGINE-1", 6, names, drop=names[0]))
    asyncio.run(produce_lines(settings, settings.topic_features, more))
    predictions = [json.loads(r.value) for r in read(settings, settings.topic_predictions, 2)]
    assert [p["metadata"]["cycle"] for p in predictions] == [4, 5]
    assert [p["metadata"]["history"] for p in predictions] == [4, 5]
    assert [p["metadata"]["padded"] for p in predictions] == [True, False]
    assert all(p["model_version"] == first for p in predictions)
    assert all(
        p["confidence_interval_lower"] <= p["rul_prediction"] <= p["confidence_interval_upper"]
        for p in predictions
    )
    letters = read(settings, settings.dlq_topic(settings.topic_features), 1)
    assert parse_headers(list(letters[0].headers))[REASON_HEADER] == (
        f"missing features: {names[0]} (the turbofan model's inputs)"
    )

    weights = next((models / second).glob("*.pt"))
    tampered = bytearray(weights.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    weights.write_bytes(bytes(tampered))
    (models / "ACTIVE").write_text(f"{second}\n")
    deadline = time.monotonic() + 30
    while "event=model_refused" not in worker.log_tail(100_000):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert f'version="{first}"}} 1.0' in metric(worker, "streamapp_rul_model_loaded")
    asyncio.run(
        produce_lines(settings, settings.topic_features, [feature_line("ENGINE-1", 7, names)])
    )
    predictions = [json.loads(r.value) for r in read(settings, settings.topic_predictions, 3)]
    assert predictions[-1]["metadata"]["cycle"] == 7
    assert predictions[-1]["model_version"] == first
    assert worker.alive()
