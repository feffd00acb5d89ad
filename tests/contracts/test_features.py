"""The `extracted-features` contract: encoding, parsing, refusals (pure, no broker)."""

from __future__ import annotations

import pytest

from streamapp.contracts.codec import Invalid, parse_ts
from streamapp.contracts.features import (
    SOURCE,
    FeatureRecord,
    encode_features,
    parse_feature_record,
)
from tests.contracts.feature_records import BRIEF_SAMPLE, LIMIT, feature_bytes


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


def test_an_encoded_window_parses_back() -> None:
    features = {"s2_mean": 1.5, "s2_count": 3}
    value = encode_features("ENGINE-0001", features, 1000.0, 2000.0, 3, "cycle", 7)
    record = parse_feature_record(value, LIMIT)
    assert isinstance(record, FeatureRecord)
    assert (record.asset_id, record.sensor_id) == ("ENGINE-0001", "all")
    assert record.timestamp_ms == record.window_end_ms == 2000.0
    assert record.features == {"s2_mean": 1.5, "s2_count": 3.0}
    assert record.raw["window"] == {
        "start": "1970-01-01T00:00:01.000Z",
        "end": "1970-01-01T00:00:02.000Z",
        "count": 3,
    }
    assert record.raw["metadata"] == {"source": SOURCE, "window_kind": "cycle", "cycle": 7}
    assert value == encode_features("ENGINE-0001", features, 1000.0, 2000.0, 3, "cycle", 7)


def test_brief_s_sample_record_parses_as_it_is() -> None:
    """Its window bounds are elided ("..."): its timestamp ends its window."""
    record = parse_feature_record(BRIEF_SAMPLE, 10_000)
    assert isinstance(record, FeatureRecord)
    assert record.window_end_ms == record.timestamp_ms == parse_ts("2024-01-01T12:00:00Z")
    assert record.features == {"rms": 10.5, "kurtosis": 2.3, "crest_factor": 3.1}
    refused = parse_feature_record(
        BRIEF_SAMPLE.replace(b'"end": "..."', b'"end": {"at": 1}'), 10_000
    )
    assert isinstance(refused, Invalid) and refused.reason.startswith("window.end")
