"""The `rul-predictions` contract: one record per applied `extracted-features` record.

The fields of the estimate come from `estimate_fields`, the rest from the feature record
it answers and the serving model; `prediction_record` writes deterministic JSON, so a
prediction sent again after a crash is the same bytes.
"""

from __future__ import annotations

from typing import Any

from streamapp.contracts.codec import encode_json, format_ts
from streamapp.contracts.features import FeatureRecord


def estimate_fields(
    rul: float,
    lower: float,
    upper: float,
    level: float,
    uncertainty: float,
    scores: dict[str, float],
) -> dict[str, Any]:
    """The ensemble's estimate for one event, in the field names of the contract."""
    return {
        "rul_prediction": rul,
        "confidence_interval_lower": lower,
        "confidence_interval_upper": upper,
        "confidence_level": level,
        "uncertainty": uncertainty,
        "model_scores": scores,
    }


def _window_end_text(record: FeatureRecord) -> str:
    """The record's own `window.end` text when it has one (formatting costs more)."""
    window = record.raw.get("window")
    end = window.get("end") if isinstance(window, dict) else None
    return end if isinstance(end, str) and end.endswith("Z") else format_ts(record.window_end_ms)


def prediction_record(
    record: FeatureRecord,
    row: dict[str, Any],
    version: str,
    history: int,
    window: int,
    features: list[str],
    latency_ms: float,
    asset_class: str | None = None,
) -> bytes:
    """The `rul-predictions` message for one event (`row`: its `estimate_fields`), as JSON;
    `asset_class` names the class whose model answered."""
    message: dict[str, Any] = {
        "asset_id": record.asset_id,
        **({"asset_class": asset_class} if asset_class is not None else {}),
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
            "window_end": _window_end_text(record),
        },
    }
    source_metadata = record.raw.get("metadata")
    if isinstance(source_metadata, dict) and "cycle" in source_metadata:
        message["metadata"]["cycle"] = source_metadata["cycle"]
    return encode_json(message)
