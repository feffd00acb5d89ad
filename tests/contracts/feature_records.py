"""Sample `extracted-features` records, for the contract and RUL sequence tests."""

from __future__ import annotations

import json

from streamapp.contracts.features import FeatureRecord, parse_feature_record

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


#: BRIEF's own `extracted-features` sample record, byte for byte (its window bounds elided).
BRIEF_SAMPLE = (
    b'{"asset_id": "ASSET001", "sensor_id": "SENSOR001",\n'
    b' "features": {"rms": 10.5, "kurtosis": 2.3, "crest_factor": 3.1},\n'
    b' "timestamp": "2024-01-01T12:00:00Z",\n'
    b' "window": {"start": "...", "end": "...", "count": 10},\n'
    b' "metadata": {"source": "extraction-features-service"}}'
)
