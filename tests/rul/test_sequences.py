"""Per-asset sequence state of streaming RUL: offset guard, window de-duplication (pure)."""

from __future__ import annotations

import json

import pytest

from streamapp.ingest.validation import Invalid
from streamapp.rul.sequences import (
    AssetSequence,
    FeatureRecord,
    Outcome,
    apply,
    missing_features,
    parse_feature_record,
    prediction_record,
)

LIMIT = 1024 * 1024


def feature_bytes(end_s: int, value: float = 1.0, **extra: object) -> bytes:
    record = {
        "asset_id": "ENGINE-0001",
        "sensor_id": "SENSOR001",
        "features": {"s2_mean": value, "s3_mean": value * 2},
        "timestamp": end_s * 1000,
        "window": {"start": (end_s - 1) * 1000, "end": end_s * 1000, "count": 1},
        "metadata": {"cycle": end_s},
    }
    record.update(extra)
    return json.dumps(record).encode()


def parsed(end_s: int, value: float = 1.0) -> FeatureRecord:
    record = parse_feature_record(feature_bytes(end_s, value), LIMIT)
    assert isinstance(record, FeatureRecord)
    return record


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (feature_bytes(1, asset_id=""), "asset_id"),
        (feature_bytes(1, features={}), "features must be"),
        (feature_bytes(1, features={"a": "x"}), "not a number"),
        (feature_bytes(1, features={"a": 1e400}), "non-finite"),
        (feature_bytes(1, timestamp="later"), "timestamp"),
        (feature_bytes(1, window={"end": "never"}), "window.end"),
        (b"[]", "JSON object"),
        (b"{", "invalid JSON"),
    ],
)
def test_bad_feature_records_are_refused(value: bytes, reason: str) -> None:
    result = parse_feature_record(value, LIMIT)
    assert isinstance(result, Invalid) and reason in result.reason


def test_missing_model_features_are_named() -> None:
    assert missing_features(parsed(1), ["s2_mean", "s4_mean", "s7_mean"]) == ["s4_mean", "s7_mean"]


def test_replayed_offsets_and_re_emitted_windows_apply_once() -> None:
    state = AssetSequence()
    assert apply(state, parsed(1), 10, None, 3) == Outcome.APPLIED
    assert apply(state, parsed(2), 11, None, 3) == Outcome.APPLIED
    assert apply(state, parsed(2), 11, None, 3) == Outcome.REPLAYED
    assert apply(state, parsed(1), 5, None, 3) == Outcome.REPLAYED
    assert apply(state, parsed(2), 12, None, 3) == Outcome.DUPLICATE_WINDOW
    assert state.names == ["s2_mean", "s3_mean"]
    assert state.rows.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert state.last_offset == 12


def test_only_the_last_capacity_rows_are_kept_with_model_features() -> None:
    state = AssetSequence()
    for step in range(1, 6):
        apply(state, parsed(step, float(step)), step, ["s2_mean"], 3)
    assert state.names == ["s2_mean"]
    assert state.rows.tolist() == [[3.0], [4.0], [5.0]]


def test_a_new_model_keeps_the_rows_that_hold_its_features() -> None:
    state = AssetSequence()
    apply(state, parsed(1, 1.0), 1, None, 30)
    apply(state, parsed(2, 2.0), 2, None, 30)
    apply(state, parsed(3, 3.0), 3, ["s3_mean"], 30)
    assert (state.names, state.rows.tolist()) == (["s3_mean"], [[2.0], [4.0], [6.0]])
    apply(state, parsed(4, 4.0), 4, ["s2_mean", "s3_mean"], 30)
    assert (state.names, state.rows.tolist()) == (["s2_mean", "s3_mean"], [[4.0, 8.0]])


def test_records_taken_without_a_model_keep_the_history_of_the_last_one() -> None:
    state = AssetSequence()
    apply(state, parsed(1, 1.0), 1, ["s3_mean"], 30)
    apply(state, parsed(2, 2.0), 2, None, 30)
    assert (state.names, state.rows.tolist()) == (["s3_mean"], [[2.0], [4.0]])
    apply(state, parsed(3, 3.0), 3, ["s3_mean"], 30)
    assert state.rows.tolist() == [[2.0], [4.0], [6.0]]


def test_state_round_trips_through_its_table_value() -> None:
    state = AssetSequence()
    apply(state, parsed(1), 1, None, 30)
    apply(state, parsed(2, 0.1), 2, None, 30)
    again = AssetSequence.from_bytes(state.to_bytes())
    assert again == state
    assert AssetSequence.from_bytes(None) == AssetSequence()
    empty = AssetSequence(names=["s2_mean"], last_offset=4)
    assert AssetSequence.from_bytes(empty.to_bytes()) == empty


def test_stored_emissions_round_trip_and_answer_replays_of_their_offsets() -> None:
    state = AssetSequence()
    apply(state, parsed(1), 7, None, 30)
    apply(state, parsed(2, 0.5), 9, None, 30)
    state.emitted = [(7, b'{"rul_prediction":1.5}'), (9, b"\x00raw bytes\xff")]
    again = AssetSequence.from_bytes(state.to_bytes())
    assert again == state
    assert again.rows.tolist() == [[1.0, 2.0], [0.5, 1.0]]
    assert again.emission(9) == b"\x00raw bytes\xff"
    assert again.emission(7) == b'{"rul_prediction":1.5}'
    assert again.emission(8) is None


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
