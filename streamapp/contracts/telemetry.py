"""The one validator of `telemetry` records, shared by every agent and the HTTP API.

It is pure (bytes in, record or reason out) so it can be property-tested without a
broker, and it never raises on bad input: a reason string is what the dead-letter
queue needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from streamapp.contracts.codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_ASSET_ID_CHARS,
    Invalid,
    decode_json,
    finite_numbers,
    format_ts,
    parse_ts,
)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A validated telemetry record; `ts_ms` is event time in epoch milliseconds."""

    asset_id: str
    ts_ms: float
    signals: dict[str, float]
    cycle: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The record in BRIEF's `telemetry` contract."""
        record: dict[str, Any] = {
            "asset_id": self.asset_id,
            "ts": format_ts(self.ts_ms),
            "signals": self.signals,
        }
        if self.cycle is not None:
            record["cycle"] = self.cycle
        if self.metadata:
            record["metadata"] = self.metadata
        return record

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":")).encode()


def validate_record(record: Any) -> Telemetry | Invalid:
    """Check a decoded JSON value against the `telemetry` contract."""
    if not isinstance(record, dict):
        return Invalid(f"record must be a JSON object, not {type(record).__name__}")
    asset_id = record.get("asset_id")
    if not isinstance(asset_id, str) or not asset_id.strip():
        return Invalid("asset_id must be a non-empty string")
    if len(asset_id) > MAX_ASSET_ID_CHARS:
        return Invalid(f"asset_id longer than {MAX_ASSET_ID_CHARS} characters")
    if "ts" not in record:
        return Invalid("ts is missing")
    ts_ms = parse_ts(record["ts"])
    if isinstance(ts_ms, str):
        return Invalid(ts_ms)
    signals = record.get("signals")
    if not isinstance(signals, dict) or not signals:
        return Invalid("signals must be a non-empty object of numbers")
    if not all(signals):
        return Invalid("signal names must be non-empty")
    clean = finite_numbers(signals, "signal")
    if isinstance(clean, Invalid):
        return clean
    cycle = record.get("cycle")
    if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, int)):
        return Invalid("cycle must be an integer")
    if cycle is not None and not 0 <= cycle < 2**63:
        return Invalid("cycle out of range")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        return Invalid("metadata must be an object")
    return Telemetry(asset_id, ts_ms, clean, cycle, metadata)


def validate_telemetry(
    value: bytes | None, key: bytes | None = None, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Telemetry | Invalid:
    """Validate a raw `telemetry` Kafka message: bytes in, `Telemetry` or `Invalid` out.

    The key is required because the topic is partitioned by asset: an unkeyed record
    would land on an arbitrary partition. A key that differs from `asset_id` is
    valid; the feature agent repartitions it.
    """
    if not key:
        return Invalid("missing key: telemetry must be keyed by asset_id")
    decoded = decode_json(value, max_bytes)
    if isinstance(decoded, Invalid):
        return decoded
    return validate_record(decoded)
