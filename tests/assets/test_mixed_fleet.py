"""A mixed fleet through one worker with the shipped asset classes and models: engines on
cycle windows served by the turbofan model, pumps on tumbling vibration windows, EVs on
their own windows; no valid record of any class is dead-lettered, malformed ones are."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import pytest

from streamapp.contracts.codec import Invalid
from streamapp.contracts.deadletter import REASON_HEADER
from streamapp.contracts.telemetry import validate_telemetry
from streamapp.rul.training.artifacts import active_version
from streamapp.runtime.clients import produce_lines
from streamapp.sim.fleet import Simulation, messages
from tests.conftest import ROOT, settings_from_env
from tests.contracts.feature_records import BRIEF_SAMPLE
from tests.support.ops import read_topic, wait_for

pytestmark = pytest.mark.integration

TICKS = 80
ASSETS = 6  # two of each kind
MODELS = ROOT / "models"
TURBOFAN_VERSION = active_version(MODELS / "turbofan")
ROTATING_VERSION = active_version(MODELS / "rotating")


def kind_of(asset_id: str) -> str:
    return {"ENGINE": "turbofan", "PUMP": "rotating"}.get(asset_id.split("-")[0], "ev")


def test_every_class_is_windowed_and_served_as_its_own(isolated_env, start_worker) -> None:
    env = {**isolated_env, "MODELS_DIR": str(ROOT / "models"), "FEATURE_BATCH_WITHIN_S": "0.2"}
    settings = settings_from_env(env)
    sim = Simulation(ASSETS, "mixed", seed=8, invalid_fraction=0.03)
    pairs = list(itertools.islice(messages(sim), ASSETS * TICKS))
    invalid = sum(isinstance(validate_telemetry(v, k), Invalid) for k, v in pairs)
    valid_per_engine = Counter(
        json.loads(v)["asset_id"]
        for k, v in pairs
        if not isinstance(validate_telemetry(v, k), Invalid) and v.startswith(b'{"asset_id":"E')
    )
    assert invalid > 0
    worker = start_worker(env)
    worker.wait_ready()
    asyncio.run(produce_lines(settings, settings.topic_telemetry, [v for _, v in pairs]))

    # Each engine's cycles close when its next cycle arrives: all but its last are windows.
    engine_windows = sum(count - 1 for count in valid_per_engine.values())
    served_classes = ("turbofan", "rotating")

    def served_and_windows() -> tuple[list[dict], list[dict]] | None:
        found = [json.loads(r.value) for r in read_topic(env, settings.topic_predictions)]
        windows = [json.loads(r.value) for r in read_topic(env, settings.topic_features)]
        predicted = {(p["asset_id"], p["metadata"]["window_end"]) for p in found}
        wanted = {
            (f["asset_id"], f["window"]["end"])
            for f in windows
            if f["metadata"]["asset_class"] in served_classes
        }
        done = len(found) >= engine_windows + 2 and wanted <= predicted
        return (found, windows) if done else None

    served, features = wait_for(served_and_windows, 120, "a prediction for every window")

    classes = {f["asset_id"]: f["metadata"]["asset_class"] for f in features}
    assert {asset: kind_of(asset) for asset in classes} == classes
    assert set(classes.values()) == {"turbofan", "rotating", "ev"}
    kinds = {(f["metadata"]["asset_class"], f["metadata"]["window_kind"]) for f in features}
    assert kinds == {("turbofan", "cycle"), ("rotating", "tumbling"), ("ev", "tumbling")}
    pump = next(f for f in features if f["metadata"]["asset_class"] == "rotating")
    assert {"rms", "kurtosis", "crest_factor", "bearing_temp_mean"} <= set(pump["features"])

    assert {(p["asset_class"], p["model_version"]) for p in served} == {
        ("turbofan", TURBOFAN_VERSION),
        ("rotating", ROTATING_VERSION),
    }
    assert {kind_of(p["asset_id"]) for p in served} == {"turbofan", "rotating"}
    assert all(kind_of(p["asset_id"]) == p["asset_class"] for p in served)

    letters = read_topic(env, settings.dlq_topic(settings.topic_telemetry))
    assert len(letters) == invalid  # the malformed ones only, each with its reason
    assert all(dict(r.headers)[REASON_HEADER] for r in letters)
    assert read_topic(env, settings.dlq_topic(settings.topic_features), idle_timeout=1.0) == []


def test_brief_s_sample_record_is_served_by_the_rotating_model(isolated_env, start_worker) -> None:
    env = {**isolated_env, "MODELS_DIR": str(MODELS)}
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()
    line = BRIEF_SAMPLE.replace(b"\n", b"")
    asyncio.run(produce_lines(settings, settings.topic_features, [line], key="ASSET001"))

    def predicted() -> list[dict]:
        return [json.loads(r.value) for r in read_topic(env, settings.topic_predictions)]

    (prediction,) = wait_for(predicted, 60, "a prediction of ASSET001")
    assert (prediction["asset_id"], prediction["sensor_id"]) == ("ASSET001", "SENSOR001")
    assert (prediction["asset_class"], prediction["model_version"]) == (
        "rotating",
        ROTATING_VERSION,
    )
    assert prediction["features"] == {"rms": 10.5, "kurtosis": 2.3, "crest_factor": 3.1}
    assert prediction["metadata"]["padded"] and prediction["metadata"]["history"] == 1
    assert prediction["timestamp"] == "2024-01-01T12:00:00Z"
