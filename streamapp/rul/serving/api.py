"""The RUL HTTP API's logic, apart from the web server: model summaries and on-demand predictions.

`POST /api/v1/rul/predict` runs a posted feature sequence through exactly the streaming
path: each step is applied to a fresh `AssetSequence` (same de-duplication of window
ends, same row order, same padding) and the result is a `rul-predictions` record, so a
dashboard or an integration test gets what the agent would publish for that history.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamapp.contracts.codec import Invalid
from streamapp.contracts.features import FeatureRecord, feature_record
from streamapp.contracts.predictions import prediction_record
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.serving.live_model import LiveModels
from streamapp.rul.serving.sequences import AssetSequence, Outcome, apply, missing_features
from streamapp.rul.training.artifacts import (
    active_version,
    class_folder,
    list_versions,
    read_metrics,
)

DEFAULT_ASSET = "api"


def version_summary(models_dir: Path, version: str) -> dict[str, Any]:
    """A version's training metrics without the per-epoch histories (None if unreadable)."""
    metrics = read_metrics(models_dir, version)
    if metrics is None:
        return {"version": version, "metrics": None}
    members = {
        name: {key: value for key, value in member.items() if key != "history"}
        for name, member in metrics.get("members", {}).items()
    }
    return {"version": version, "metrics": {**metrics, "members": members}}


def fleet_models_summary(models_dir: Path, live: LiveModels) -> dict[str, Any]:
    """Per asset class the worker knows: `class_summary`."""
    return {
        "classes": [
            {"asset_class": name, **class_summary(class_folder(models_dir, name), model.ensemble)}
            for name, model in live.by_class.items()
        ]
    }


def class_summary(models_dir: Path, serving: Ensemble | None) -> dict[str, Any]:
    """A class's active version (its ACTIVE), the one this worker serves, and every
    version's metrics (`models_dir`: the class's folder)."""
    active = active_version(models_dir)
    return {
        "active": active,
        "serving": serving.version if serving else None,
        "active_metrics": version_summary(models_dir, active)["metrics"] if active else None,
        "versions": [
            {**version_summary(models_dir, version), "active": version == active}
            for version in list_versions(models_dir)
        ],
    }


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A validated feature sequence, oldest step first, and the class it names (None: the
    class rules decide, on its last step)."""

    steps: list[FeatureRecord]
    asset_class: str | None = None


def parse_predict_request(body: Any, max_steps: int) -> PredictRequest | Invalid:
    """`{"asset_id", "sensor_id"?, "asset_class"?, "sequence": [step, ...]}`, oldest first.

    A step is an `extracted-features` record (its `features`, `timestamp`, `window`) or a
    bare map of feature values; bare steps are ordered as posted.
    """
    if not isinstance(body, dict):
        return Invalid("body must be a JSON object with a `sequence` array")
    asset_id = body.get("asset_id", DEFAULT_ASSET)
    sensor_id = body.get("sensor_id")
    if sensor_id is not None and not isinstance(sensor_id, str):
        return Invalid("sensor_id must be a string")
    asset_class = body.get("asset_class")
    if asset_class is not None and not isinstance(asset_class, str):
        return Invalid("asset_class must be a string")
    sequence = body.get("sequence")
    if not isinstance(sequence, list) or not sequence:
        return Invalid("sequence must be a non-empty array of feature steps, oldest first")
    if len(sequence) > max_steps:
        return Invalid(f"sequence longer than {max_steps} steps")
    steps = []
    for index, step in enumerate(sequence):
        if not isinstance(step, dict):
            return Invalid(f"sequence[{index}] must be an object")
        full = isinstance(step.get("features"), dict)
        if full and not isinstance(step.get("window"), dict | None):
            return Invalid(f"sequence[{index}].window must be an object")
        record = feature_record(
            {
                "asset_id": asset_id,
                "sensor_id": sensor_id,
                "features": step["features"] if full else step,
                "timestamp": step.get("timestamp", index) if full else index,
                "window": step.get("window") if full else None,
                "metadata": step.get("metadata") if full else None,
            }
        )
        if isinstance(record, Invalid):
            return Invalid(f"sequence[{index}]: {record.reason}")
        steps.append(record)
    return PredictRequest(steps, asset_class)


def predict_sequence(
    ensemble: Ensemble, request: PredictRequest, asset_class: str | None = None
) -> dict[str, Any] | Invalid:
    """The `rul-predictions` record for the last step, as the streaming agent computes it
    with `asset_class`'s model."""
    started = time.perf_counter()
    for index, step in enumerate(request.steps):
        if missing := missing_features(step, ensemble.feature_names):
            return Invalid(f"sequence[{index}]: missing features: {', '.join(missing)}")
    state = AssetSequence()
    outcome = Outcome.APPLIED
    for offset, step in enumerate(request.steps):
        outcome = apply(state, step, offset, ensemble.feature_names, ensemble.window)
    if outcome != Outcome.APPLIED:
        return Invalid("the last step must end after every earlier one (as in the stream)")
    result = ensemble.predict(ensemble.window_from_rows(state.rows)[None])
    row = result.row(0)
    numbers = [row["rul_prediction"], row["uncertainty"], *row["model_scores"].values()]
    if not all(math.isfinite(value) for value in numbers):
        # Features far outside the training range overflow the float32 networks; a null
        # RUL would read as a prediction.
        return Invalid("the features are out of the model's range: its prediction is not finite")
    return json.loads(
        prediction_record(
            request.steps[-1],
            row,
            ensemble.version,
            len(state.rows),
            ensemble.window,
            ensemble.feature_names,
            (time.perf_counter() - started) * 1000.0,
            asset_class,
        )
    )
