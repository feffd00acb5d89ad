"""The shared validator: contract checks and properties (pure, no broker)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.contracts.codec import Invalid, format_ts, parse_ts
from streamapp.contracts.telemetry import Telemetry, validate_telemetry

KEY = b"ENGINE-0001"


def record(**overrides: object) -> bytes:
    base = {
        "asset_id": "ENGINE-0001",
        "ts": "2026-11-22T06:00:00.123Z",
        "signals": {"s2": 642.1, "s3": 1589.7},
        "cycle": 12,
    }
    base.update(overrides)
    return json.dumps(base).encode()


def test_valid_record_is_normalised() -> None:
    result = validate_telemetry(record(), KEY)
    assert isinstance(result, Telemetry)
    assert result.asset_id == "ENGINE-0001"
    assert result.signals == {"s2": 642.1, "s3": 1589.7}
    assert result.cycle == 12
    assert format_ts(result.ts_ms) == "2026-11-22T06:00:00.123Z"


def test_epoch_milliseconds_and_iso_agree() -> None:
    iso = validate_telemetry(record(ts="2026-11-22T06:00:00.123Z"), KEY)
    epoch = validate_telemetry(record(ts=parse_ts("2026-11-22T06:00:00.123Z")), KEY)
    assert isinstance(iso, Telemetry) and isinstance(epoch, Telemetry)
    assert iso.ts_ms == epoch.ts_ms


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (record(), None, "missing key"),
        (record(), b"", "missing key"),
        (b"", KEY, "empty value"),
        (record()[:-5], KEY, "invalid JSON"),
        (b'{"asset_id": "a", "ts": 1, "signals": {"x": NaN}}', KEY, "non-finite"),
        (b'{"asset_id": "a", "ts": 1, "signals": {"x": Infinity}}', KEY, "non-finite"),
        (b'{"asset_id": "a", "ts": 1, "signals": {"x": 1e400}}', KEY, "not finite"),
        (record(asset_id=""), KEY, "asset_id"),
        (record(asset_id=None), KEY, "asset_id"),
        (record(asset_id="x" * 129), KEY, "longer than 128"),
        (record(asset_id=7), KEY, "asset_id"),
        (record(ts="yesterday"), KEY, "ISO-8601"),
        (record(ts=True), KEY, "boolean"),
        (record(ts=None), KEY, "ts must be"),
        (record(signals={}), KEY, "non-empty"),
        (record(signals=[1, 2]), KEY, "non-empty"),
        (record(signals={"s2": "high"}), KEY, "not a number"),
        (record(signals={"s2": True}), KEY, "not a number"),
        (record(signals={"s2": None}), KEY, "not a number"),
        (record(cycle="12"), KEY, "cycle"),
        (record(metadata=[1]), KEY, "metadata"),
        (b"\xff\xfe\x00garbage", KEY, "invalid UTF-8"),
        (b"[1, 2, 3]", KEY, "JSON object"),
        (b"[" * 100 + b"]" * 100, KEY, "nested"),
        (b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}', KEY, "too large"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(
    value: bytes, key: bytes | None, reason: str
) -> None:
    result = validate_telemetry(value, key)
    assert isinstance(result, Invalid)
    assert reason in result.reason


def test_missing_ts_is_refused() -> None:
    value = json.dumps({"asset_id": "a", "signals": {"x": 1}}).encode()
    result = validate_telemetry(value, KEY)
    assert isinstance(result, Invalid) and result.reason == "ts is missing"


def test_deeply_nested_metadata_is_refused_not_crashing() -> None:
    nested: object = 1
    for _ in range(5000):
        nested = {"a": nested}
    value = b'{"asset_id":"a","ts":1,"signals":{"x":1},"metadata":' + b'{"a":' * 5000
    value += b"1" + b"}" * 5001
    result = validate_telemetry(value, KEY)
    assert isinstance(result, Invalid)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    result = validate_telemetry(value, KEY)
    assert isinstance(result, Telemetry | Invalid)


@given(
    asset_id=st.text(min_size=1, max_size=128).filter(str.strip),
    signals=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        min_size=1,
        max_size=10,
    ),
    ts=st.integers(min_value=0, max_value=4_102_444_800_000),
)
def test_every_valid_record_round_trips(asset_id: str, signals: dict[str, float], ts: int) -> None:
    value = json.dumps({"asset_id": asset_id, "ts": ts, "signals": signals}).encode()
    result = validate_telemetry(value, asset_id.encode())
    assert isinstance(result, Telemetry)
    again = validate_telemetry(result.to_bytes(), asset_id.encode())
    assert isinstance(again, Telemetry)
    assert again.asset_id == asset_id
    assert again.signals == signals
    assert math.isclose(again.ts_ms, ts, abs_tol=1.0)
