"""The RUL API's logic without a web server: predict requests, model summaries, the key check."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from streamapp.contracts.codec import Invalid
from streamapp.rul.serving.api import class_summary, parse_predict_request, predict_sequence
from streamapp.rul.training.artifacts import load_active
from streamapp.settings import Settings
from streamapp.web.auth import key_refusal
from tests.conftest import ROOT

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def ensemble():
    return load_active(MODELS / "turbofan")


def bare_steps(names: list[str], count: int, seed: int = 0) -> list[dict[str, float]]:
    """Feature maps near the scaler's means (raw units), oldest first."""
    rng = np.random.default_rng(seed)
    return [{name: 500.0 + float(rng.normal()) for name in names} for _ in range(count)]


@pytest.mark.parametrize("count", [1, 12, 45])
def test_a_posted_sequence_predicts_as_offline_serving(ensemble, count: int) -> None:
    steps = bare_steps(ensemble.feature_names, count)
    request = parse_predict_request({"asset_id": "E-1", "sequence": steps}, 1000)
    assert not isinstance(request, Invalid)
    record = predict_sequence(ensemble, request)
    assert not isinstance(record, Invalid)
    offline = ensemble.predict(np.stack([ensemble.build_window(steps)]))
    assert record["rul_prediction"] == pytest.approx(float(offline.rul[0]), abs=1e-9)
    assert record["confidence_interval_upper"] == pytest.approx(float(offline.upper[0]))
    assert record["model_scores"] == pytest.approx(
        {k: float(v[0]) for k, v in offline.scores.items()}
    )
    assert record["asset_id"] == "E-1" and record["model_version"] == ensemble.version
    assert record["metadata"]["history"] == min(count, ensemble.window)
    assert record["metadata"]["padded"] is (count < ensemble.window)
    assert record["features"] == steps[-1]


def test_contract_records_use_their_window_ends_and_skip_re_sent_windows(ensemble) -> None:
    names = ensemble.feature_names
    steps = bare_steps(names, 3, seed=1)
    records = [
        {"features": step, "timestamp": 1000 * (i + 1), "window": {"end": 1000 * (i + 1)}}
        for i, step in enumerate(steps)
    ]
    resent = {**records[1], "features": bare_steps(names, 1, seed=9)[0]}
    request = parse_predict_request({"sequence": [records[0], records[1], resent, records[2]]}, 10)
    assert not isinstance(request, Invalid)
    record = predict_sequence(ensemble, request)
    offline = ensemble.predict(np.stack([ensemble.build_window(steps)]))
    assert record["rul_prediction"] == pytest.approx(float(offline.rul[0]), abs=1e-9)
    assert record["metadata"]["history"] == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "JSON object"),
        ({"sequence": []}, "non-empty array"),
        ({"sequence": [1]}, "sequence[0] must be an object"),
        ({"sequence": [{"a": "x"}]}, "not a number"),
        ({"sequence": [{"a": 1.0}] * 11}, "longer than 10"),
        ({"asset_id": "", "sequence": [{"a": 1.0}]}, "asset_id"),
        ({"sensor_id": 7, "sequence": [{"a": 1.0}]}, "sensor_id must be a string"),
        ({"sequence": [{"features": {"a": 1.0}, "window": 5}]}, "sequence[0].window"),
    ],
)
def test_bad_predict_requests_are_refused_with_a_reason(body: object, reason: str) -> None:
    result = parse_predict_request(body, 10)
    assert isinstance(result, Invalid) and reason in result.reason


def test_missing_features_and_out_of_order_steps_are_refused(ensemble) -> None:
    names = ensemble.feature_names
    partial = {name: 1.0 for name in names[1:]}
    result = predict_sequence(ensemble, parse_predict_request({"sequence": [partial]}, 10))
    assert isinstance(result, Invalid) and result.reason.endswith(f"missing features: {names[0]}")
    steps = [
        {"features": step, "timestamp": 5000 - i} for i, step in enumerate(bare_steps(names, 2))
    ]
    result = predict_sequence(ensemble, parse_predict_request({"sequence": steps}, 10))
    assert isinstance(result, Invalid) and "last step" in result.reason


def test_features_out_of_the_model_s_range_are_refused_not_predicted_as_null(ensemble) -> None:
    steps = [dict.fromkeys(ensemble.feature_names, 1e300)]
    result = predict_sequence(ensemble, parse_predict_request({"sequence": steps}, 10))
    assert isinstance(result, Invalid) and "out of the model's range" in result.reason


def test_models_summary_names_active_and_serving_versions(ensemble, tmp_path: Path) -> None:
    summary = class_summary(MODELS / "turbofan", ensemble)
    assert summary["active"] == summary["serving"] == ensemble.version
    assert summary["active_metrics"]["validation_rmse"]["ensemble"] > 0
    assert all("history" not in m for m in summary["active_metrics"]["members"].values())
    assert [v["active"] for v in summary["versions"] if v["version"] == ensemble.version] == [True]
    empty = class_summary(tmp_path, None)
    assert empty == {"active": None, "serving": None, "active_metrics": None, "versions": []}


def test_the_api_key_check_refuses_missing_wrong_and_unconfigured_keys() -> None:
    configured = Settings(api_key="s3cret-key")
    assert key_refusal("s3cret-key", configured, "training") is None
    assert key_refusal(None, configured, "training") == "missing or invalid X-Api-Key"
    assert key_refusal("s3cret-kez", configured, "training") == "missing or invalid X-Api-Key"
    assert "training is disabled" in key_refusal("s3cret-key", Settings(api_key=None), "training")


def test_streaming_rows_and_member_threads_give_the_offline_numbers(ensemble) -> None:
    steps = bare_steps(ensemble.feature_names, 7, seed=5)
    rows = [[step[name] for name in ensemble.feature_names] for step in steps]
    window = ensemble.window_from_rows(rows)
    assert np.array_equal(window, ensemble.build_window(steps))
    batch = np.stack([window, ensemble.window_from_rows(rows[:3])])
    with ThreadPoolExecutor(2) as pool:
        parallel = ensemble.predict(batch, pool=pool)
    serial = ensemble.predict(batch)
    assert np.array_equal(parallel.rul, serial.rul)
    assert all(np.array_equal(parallel.scores[k], serial.scores[k]) for k in serial.scores)
