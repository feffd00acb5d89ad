"""The `extracted-features` contract: one record per closed window of one asset.

The feature agent encodes it (`encode_features`), the RUL agent and the HTTP API parse it
(`parse_feature_record`, `feature_record`). `features` maps `<signal>_<feature>` to its
value, null where that is not finite; the parser takes finite numbers only. A record's
window ends at `window.end`, or at `timestamp` when that is absent or elided (`"..."`, as
BRIEF's own sample writes it); any other `window.end` must be a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamapp.contracts.codec import (
    MAX_ASSET_ID_CHARS,
    Invalid,
    decode_json,
    encode_json,
    finite_numbers,
    format_ts,
    parse_ts,
)

#: A window bound left out, as BRIEF's sample record writes it.
ELIDED = "..."
#: `metadata.source` of the records the feature agent emits.
SOURCE = "streamapp-features"


def encode_features(
    asset_id: str,
    features: dict[str, float | int | None],
    start_ms: float,
    end_ms: float,
    count: int,
    window_kind: str,
    cycle: int | None = None,
    asset_class: str | None = None,
) -> bytes:
    """The record of one closed window [start_ms, end_ms) of `count` samples, as bytes."""
    end = format_ts(end_ms)
    metadata: dict[str, Any] = {"source": SOURCE, "window_kind": window_kind}
    if cycle is not None:
        metadata["cycle"] = cycle
    if asset_class is not None:
        metadata["asset_class"] = asset_class
    record = {
        "asset_id": asset_id,
        "sensor_id": "all",
        "features": features,
        "timestamp": end,
        "window": {
            "start": format_ts(start_ms),
            "end": end,
            "count": count,
        },
        "metadata": metadata,
    }
    # Every value is finite or None by now; floats are written as the shortest
    # round-trip text, so a replayed window's bytes equal the first emission's.
    return encode_json(record)


@dataclass(frozen=True, slots=True)
class FeatureRecord:
    """A validated `extracted-features` record."""

    asset_id: str
    sensor_id: str | None
    timestamp_ms: float
    window_end_ms: float
    features: dict[str, float]
    raw: dict[str, Any]


def parse_feature_record(value: bytes | None, max_bytes: int) -> FeatureRecord | Invalid:
    """Check BRIEF's `extracted-features` contract; `asset_id` and `features` required."""
    decoded = decode_json(value, max_bytes)
    if isinstance(decoded, Invalid):
        return decoded
    return feature_record(decoded)


def feature_record(decoded: Any) -> FeatureRecord | Invalid:
    """An already decoded JSON value checked against the `extracted-features` contract."""
    if not isinstance(decoded, dict):
        return Invalid("record must be a JSON object")
    asset_id = decoded.get("asset_id")
    if not isinstance(asset_id, str) or not asset_id.strip() or len(asset_id) > MAX_ASSET_ID_CHARS:
        return Invalid(
            f"asset_id must be a non-empty string of at most {MAX_ASSET_ID_CHARS} characters"
        )
    features = decoded.get("features")
    if not isinstance(features, dict) or not features:
        return Invalid("features must be a non-empty object of numbers")
    clean = finite_numbers(features, "feature")
    if isinstance(clean, Invalid):
        return clean
    timestamp = parse_ts(decoded.get("timestamp", 0))
    if isinstance(timestamp, str):
        return Invalid(f"timestamp: {timestamp}")
    window = decoded.get("window")
    window_end = timestamp
    if isinstance(window, dict) and window.get("end") not in (None, ELIDED):
        end = parse_ts(window["end"])
        if isinstance(end, str):
            return Invalid(f"window.end: {end}")
        window_end = end
    sensor_id = decoded.get("sensor_id")
    return FeatureRecord(
        asset_id,
        sensor_id if isinstance(sensor_id, str) else None,
        timestamp,
        window_end,
        clean,
        decoded,
    )
