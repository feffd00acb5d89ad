"""Models in S3 (MODELS_URL): two workers with their own data dirs and local mirrors
follow one activation; the other class keeps its model (real broker, real moto S3)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamapp.rul.training.artifacts import active_version, load_ensemble, save_ensemble
from streamapp.rul.training.remote import ModelBucket
from tests.conftest import ROOT, settings_from_env
from tests.support.ops import get_json, wait_for

pytestmark = pytest.mark.integration

SHIPPED = ROOT / "models"


def serving(worker) -> dict[str, str | None]:
    classes = get_json(worker, "/api/v1/rul/models")["classes"]
    return {entry["asset_class"]: entry["serving"] for entry in classes}


def test_two_workers_follow_one_activation_in_the_bucket(
    isolated_env, start_worker, tmp_path: Path
) -> None:
    env = {**isolated_env, "MODELS_URL": f"s3://{isolated_env['S3_BUCKET']}/models"}
    settings = settings_from_env(env)
    bucket = ModelBucket.from_url(env["MODELS_URL"], settings)
    uploaded = asyncio.run(bucket.publish(SHIPPED))
    assert {name for name, _ in uploaded} == {"turbofan", "rotating"}
    turbofan = active_version(SHIPPED / "turbofan")
    rotating = active_version(SHIPPED / "rotating")

    workers = []
    for name in ("east", "west"):
        mirror = {**env, "MODELS_DIR": str(tmp_path / name / "models")}
        worker = start_worker(mirror, name=name, data_dir=tmp_path / name / "data")
        workers.append(worker)
    for worker in workers:
        worker.wait_ready()
        wait_for(lambda w=worker: serving(w)["turbofan"] == turbofan, 60, "the mirror served")
        assert serving(worker)["rotating"] == rotating

    # A second turbofan version, trained elsewhere and uploaded, then activated by the CLI.
    staging = tmp_path / "staging"
    again = load_ensemble(SHIPPED / "turbofan" / turbofan)
    save_ensemble(again, staging / "turbofan", version="turbofan-v2")
    assert asyncio.run(bucket.upload(staging, "turbofan", "turbofan-v2"))
    cli_env = {**os.environ, **env, "MODELS_DIR": str(tmp_path / "cli" / "models")}
    done = subprocess.run(
        [sys.executable, "-m", "streamapp", "models", "activate", "turbofan-v2"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "active model of turbofan: turbofan-v2" in done.stdout
    assert asyncio.run(bucket.active("turbofan")) == "turbofan-v2"

    for worker in workers:
        wait_for(lambda w=worker: serving(w)["turbofan"] == "turbofan-v2", 30, "the activation")
        assert serving(worker)["rotating"] == rotating  # the other class untouched
        assert "event=model_synced asset_class=turbofan version=turbofan-v2" in worker.log_tail(
            200_000
        )
