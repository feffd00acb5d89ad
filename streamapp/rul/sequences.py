"""Per-asset feature sequences for streaming RUL: pure logic, tested without a broker.

An asset's state is one table value holding its last W feature rows, the source
offset of the last event applied (replays at or below it are skipped, so a crash
never double-applies a step) and the end of the last window applied (a window
re-emitted by the feature agent after its own crash carries a new offset but the
same end, and is skipped too). Predictions of the most recent events are kept in
the state, so an event replayed after a crash re-publishes the very same bytes
instead of nothing: emissions are at-least-once and byte-identical.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from streamapp.ingest.validation import (
    Invalid,
    decode_json,
    finite_numbers,
    format_ts,
    parse_ts,
)

KEPT_PREDICTIONS = 16


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
    if not isinstance(decoded, dict):
        return Invalid("record must be a JSON object")
    asset_id = decoded.get("asset_id")
    if not isinstance(asset_id, str) or not asset_id.strip() or len(asset_id) > 128:
        return Invalid("asset_id must be a non-empty string of at most 128 characters")
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
    window_end: float | str = timestamp
    if isinstance(window, dict) and window.get("end") is not None:
        window_end = parse_ts(window["end"])
        if isinstance(window_end, str):
            return Invalid(f"window.end: {window_end}")
    sensor_id = decoded.get("sensor_id")
    return FeatureRecord(
        asset_id,
        sensor_id if isinstance(sensor_id, str) else None,
        timestamp,
        window_end,
        clean,
        decoded,
    )


def missing_features(record: FeatureRecord, needed: list[str]) -> list[str]:
    return [name for name in needed if name not in record.features]


@dataclass(slots=True)
class AssetSequence:
    """The table value of one asset."""

    rows: list[dict[str, float]] = field(default_factory=list)
    last_offset: int = -1
    last_window_end_ms: float = -math.inf
    recent: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "last_offset": self.last_offset,
            "last_window_end_ms": None
            if math.isinf(self.last_window_end_ms)
            else self.last_window_end_ms,
            "recent": {str(offset): text for offset, text in self.recent.items()},
        }

    def to_bytes(self) -> bytes:
        """The table value: compact JSON (the changelog carries rows and guard together)."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, value: bytes | None) -> AssetSequence:
        return cls.from_json(json.loads(value) if value else None)

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> AssetSequence:
        if not value:
            return cls()
        end = value.get("last_window_end_ms")
        return cls(
            rows=list(value.get("rows", [])),
            last_offset=int(value.get("last_offset", -1)),
            last_window_end_ms=-math.inf if end is None else float(end),
            recent={int(offset): text for offset, text in value.get("recent", {}).items()},
        )


class Outcome:
    """What to do with one event, decided by `AssetSequence.apply`."""

    APPLIED = "applied"
    REPLAYED = "replayed"
    DUPLICATE_WINDOW = "duplicate_window"


def apply(
    state: AssetSequence,
    record: FeatureRecord,
    offset: int,
    keep_features: list[str] | None,
    capacity: int,
) -> str:
    """Append the record's features unless it was applied before; returns an `Outcome`."""
    if offset <= state.last_offset:
        return Outcome.REPLAYED
    state.last_offset = offset
    if record.window_end_ms <= state.last_window_end_ms:
        return Outcome.DUPLICATE_WINDOW
    state.last_window_end_ms = record.window_end_ms
    if keep_features is not None:
        state.rows = [row for row in state.rows if all(name in row for name in keep_features)]
    row = (
        record.features
        if keep_features is None
        else {name: record.features[name] for name in keep_features}
    )
    state.rows.append(row)
    del state.rows[:-capacity]
    return Outcome.APPLIED


def remember(state: AssetSequence, offset: int, prediction: str) -> None:
    """Keep the prediction of an event so a replay re-publishes identical bytes."""
    state.recent[offset] = prediction
    for stale in sorted(state.recent)[:-KEPT_PREDICTIONS]:
        del state.recent[stale]


def prediction_record(
    record: FeatureRecord,
    row: dict[str, Any],
    version: str,
    history: int,
    window: int,
    features: list[str],
    latency_ms: float,
) -> str:
    """The `rul-predictions` message for one event, as deterministic JSON text."""
    message = {
        "asset_id": record.asset_id,
        "sensor_id": record.sensor_id,
        "timestamp": record.raw.get("timestamp") or format_ts(record.timestamp_ms),
        **row,
        "model_used": "ensemble",
        "model_version": version,
        "sequence_length": window,
        "features": {name: record.features[name] for name in features},
        "metadata": {
            "latency_ms": round(latency_ms, 3),
            "history": history,
            "padded": history < window,
            "window_end": format_ts(record.window_end_ms),
        },
    }
    source_metadata = record.raw.get("metadata")
    if isinstance(source_metadata, dict) and "cycle" in source_metadata:
        message["metadata"]["cycle"] = source_metadata["cycle"]
    return json.dumps(message, separators=(",", ":"))
