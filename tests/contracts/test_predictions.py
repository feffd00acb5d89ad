"""The `rul-predictions` contract: fields and deterministic bytes (pure, no broker)."""

from __future__ import annotations

import json

from streamapp.contracts.predictions import prediction_record
from tests.contracts.feature_records import parsed


def test_prediction_record_follows_the_contract() -> None:
    row = {
        "rul_prediction": 50.0,
        "confidence_interval_lower": 40.0,
        "confidence_interval_upper": 60.0,
        "confidence_level": 0.9,
        "uncertainty": 10.0,
        "model_scores": {"lstm": 49.0, "gru": 50.0, "tcn": 51.0},
    }
    text = prediction_record(parsed(7), row, "v1", 7, 30, ["s2_mean"], 3.25)
    message = json.loads(text)
    for key in (
        "asset_id",
        "sensor_id",
        "timestamp",
        "rul_prediction",
        "confidence_interval_lower",
        "confidence_interval_upper",
        "confidence_level",
        "uncertainty",
        "model_used",
        "model_scores",
        "model_version",
        "sequence_length",
        "features",
        "metadata",
    ):
        assert key in message
    assert message["features"] == {"s2_mean": 1.0}
    assert message["metadata"]["padded"] is True and message["metadata"]["cycle"] == 7
    assert message["metadata"]["latency_ms"] == 3.25
    assert text == prediction_record(parsed(7), row, "v1", 7, 30, ["s2_mean"], 3.25)
