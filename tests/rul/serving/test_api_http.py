"""The RUL HTTP API on a running worker: models, predict, API key, a training job from S3."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamapp import s3
from streamapp.rul.training.artifacts import load_active
from tests.conftest import ROOT
from tests.rul.synthetic import write_cmapss
from tests.support.ops import get_json, post, running_model_worker, settings_of, wait_for
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

API_KEY = "rul-api-key-5d1e"
PREFIX = "/api/v1/rul"


@pytest.fixture(scope="module")
def api_worker(
    kafka_broker: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[tuple[WorkerProcess, dict[str, str]]]:
    """A worker serving a copy of the shipped models (training jobs write new versions there)."""
    with running_model_worker(
        kafka_broker,
        s3_server,
        tmp_path_factory.mktemp("rul-api"),
        artifacts_dir / "rul-api-worker.log",
        API_KEY=API_KEY,
    ) as started:
        yield started


def call(worker: WorkerProcess, path: str, body: object, key: str | None = API_KEY):
    headers = {} if key is None else {"X-Api-Key": key}
    return post(worker.base_url + PREFIX + path, json.dumps(body).encode(), headers)


def turbofan_models(worker: WorkerProcess) -> dict:
    """The `turbofan` entry of GET /models."""
    classes = get_json(worker, PREFIX + "/models")["classes"]
    (found,) = [entry for entry in classes if entry["asset_class"] == "turbofan"]
    return found


def test_models_and_predict_match_offline_serving(api_worker) -> None:
    worker, env = api_worker
    ensemble = load_active(Path(env["MODELS_DIR"]) / "turbofan")
    models = wait_for(lambda: (m := turbofan_models(worker))["serving"] and m, 30, "model loaded")
    assert models["active"] == models["serving"] == ensemble.version
    assert models["active_metrics"]["validation_rmse"]["ensemble"] > 0

    rng = np.random.default_rng(3)
    means = dict(zip(ensemble.scaler.input_names, ensemble.scaler.mean[0], strict=True))
    steps = [
        {name: float(means.get(name, 0.0) + rng.normal()) for name in ensemble.feature_names}
        for _ in range(ensemble.window + 10)
    ]
    status, record = call(worker, "/predict", {"asset_id": "API-1", "sequence": steps}, key=None)
    assert status == 200, record
    offline = ensemble.predict(np.stack([ensemble.build_window(steps)]))
    # float32 networks: a batch of another size may round differently (about 1e-5 cycles).
    assert abs(record["rul_prediction"] - float(offline.rul[0])) <= 1e-4
    assert abs(record["confidence_interval_lower"] - float(offline.lower[0])) <= 1e-4
    assert record["model_version"] == ensemble.version and record["asset_id"] == "API-1"
    assert record["asset_class"] == "turbofan"  # by the class rules on its feature names
    assert record["sequence_length"] == ensemble.window and not record["metadata"]["padded"]

    partial = [{k: v for k, v in step.items() if k != ensemble.feature_names[0]} for step in steps]
    status, body = call(worker, "/predict", {"sequence": partial, "asset_class": "turbofan"})
    assert status == 400 and "missing features" in body["detail"]
    status, body = call(worker, "/predict", {"sequence": steps, "asset_class": "ev"})
    assert (status, body["error"]) == (503, "no_model") and "class ev" in body["detail"]


def test_mutating_endpoints_need_the_key_and_refusals_are_logged(api_worker) -> None:
    worker, _ = api_worker
    wrong = "not-the-key-" + "q" * 16
    for key in (None, wrong):
        assert call(worker, "/train", {"data": "/tmp"}, key=key)[0] == 401
        assert call(worker, "/models/anything/activate", {}, key=key)[0] == 401
    assert worker.get(PREFIX + "/train/nosuchjob")[0] == 404
    log = worker.log_path.read_text(errors="replace")
    assert log.count("event=http_refused endpoint=/api/v1/rul/train status=401") >= 2
    assert "endpoint=/api/v1/rul/models/anything/activate status=401" in log
    assert wrong not in log and API_KEY not in log
    assert call(worker, "/train", {"data": "/tmp", "epochs": 0})[0] == 400


def test_a_training_job_on_an_s3_prefix_finishes_and_its_model_can_be_activated(
    api_worker, tmp_path: Path
) -> None:
    worker, env = api_worker
    settings = settings_of(env)
    data = write_cmapss(tmp_path / "tiny", n_train=8)

    async def upload() -> None:
        async with s3.client(settings) as client:
            for path in sorted(data.iterdir()):
                key = f"datasets/tiny/{path.name}"
                await client.put_object(Bucket=settings.s3_bucket, Key=key, Body=path.read_bytes())

    asyncio.run(upload())
    request = {"data": f"s3://{settings.s3_bucket}/datasets/tiny", "models": ["tcn"],
               "epochs": 1, "window": 5}  # fmt: skip
    status, started = call(worker, "/train", request)
    assert status == 202, started
    assert call(worker, "/train", request)[0] == 409  # one job at a time

    def finished() -> dict | None:
        job = get_json(worker, started["status_url"])
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_for(finished, 180, "the training job to finish", every=1.0)
    assert job["status"] == "succeeded" and job["exit_code"] == 0, job["log_tail"]
    assert "downloaded 3 objects" in job["log_tail"] and "saved" in job["log_tail"]
    (version,) = job["model_versions"]

    status, body = call(worker, f"/models/{version}/activate", {})
    assert (status, body["active"], body["serving"]) == (200, version, version)
    assert body["asset_class"] == "turbofan"
    models = turbofan_models(worker)
    assert models["active"] == models["serving"] == version
    assert {v["version"] for v in models["versions"]} >= {
        version,
        load_active(ROOT / "models" / "turbofan").version,
    }
