"""Fuzzing the validators and decoders: any bytes give a record or a reason, never a crash.

A decoder that raises on some input stops (or restarts) the agent that called it and
loses the dead letter, so every input, however hostile, must come back as either a
valid record that the agents can re-encode and key, or an `Invalid` with a reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tesla_protocol.telemetry import vehicle_data_pb2

from streamapp.contracts.codec import Invalid
from streamapp.contracts.features import FeatureRecord, parse_feature_record
from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.contracts.tesla import decode_tesla
from streamapp.web.ingest_http import Refusal, parse_batch

MAX_BYTES = 64 * 1024
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
timestamps = st.one_of(
    st.just("2026-11-22T06:00:00.123Z"),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    json_values,
)
names = st.one_of(st.text(max_size=10), st.sampled_from(["s2", "\ud800", "", "\x00", "A\udfff"]))
numbers = st.dictionaries(names, st.floats(), min_size=1, max_size=4)


def dumps(value: Any) -> bytes:
    """JSON as a lax producer writes it: NaN/Infinity literals and lone surrogates kept."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def telemetry_like(draw: st.DrawFn) -> bytes:
    """Objects close to the `telemetry` contract, each field possibly wrong."""
    record: dict[str, Any] = {
        "asset_id": draw(st.one_of(names, json_values)),
        "ts": draw(timestamps),
        "signals": draw(
            st.one_of(numbers, st.dictionaries(names, json_values, max_size=4), json_values)
        ),
    }
    if draw(st.booleans()):
        record["cycle"] = draw(json_values)
    if draw(st.booleans()):
        record["metadata"] = draw(json_values)
    if draw(st.booleans()):
        del record[draw(st.sampled_from(sorted(record)))]
    return dumps(record)


@st.composite
def tesla_json_like(draw: st.DrawFn) -> bytes:
    """Protojson Tesla records with arbitrary value types and contents."""
    value_type = st.one_of(
        st.sampled_from(
            ["stringValue", "doubleValue", "intValue", "longValue", "locationValue", "boolValue"]
        ),
        st.text(max_size=10),
    )
    data = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.one_of(names, json_values),
                    "value": st.one_of(st.dictionaries(value_type, json_values), json_values),
                }
            ),
            max_size=4,
        )
    )
    return dumps(
        {
            "vin": draw(st.one_of(names, json_values)),
            "createdAt": draw(timestamps),
            "data": draw(st.one_of(st.just(data), json_values)),
            "isResend": draw(json_values),
        }
    )


@st.composite
def tesla_protobuf_like(draw: st.DrawFn) -> bytes:
    """Well-formed protobuf Payloads whose field numbers and values are arbitrary."""
    payload = vehicle_data_pb2.Payload(vin=draw(st.text(max_size=20)))
    payload.created_at.seconds = draw(st.integers(min_value=-(2**40), max_value=2**40))
    payload.created_at.nanos = draw(st.integers(min_value=0, max_value=999_999_999))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        datum = payload.data.add()
        datum.key = draw(st.integers(min_value=0, max_value=2**31 - 1))
        kind = draw(st.sampled_from(["string", "double", "long", "location"]))
        if kind == "string":
            datum.value.string_value = draw(st.text(max_size=12))
        elif kind == "double":
            datum.value.double_value = draw(st.floats(allow_nan=True, allow_infinity=True))
        elif kind == "long":
            datum.value.long_value = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
        else:
            datum.value.location_value.latitude = draw(st.floats())
    return payload.SerializeToString()


@st.composite
def features_like(draw: st.DrawFn) -> bytes:
    """`extracted-features` records with any field wrong or missing."""
    record: dict[str, Any] = {
        "asset_id": draw(st.one_of(names, json_values)),
        "features": draw(
            st.one_of(numbers, st.dictionaries(names, json_values, max_size=4), json_values)
        ),
        "timestamp": draw(timestamps),
        "window": draw(st.one_of(st.fixed_dictionaries({"end": timestamps}), json_values)),
    }
    if draw(st.booleans()):
        del record[draw(st.sampled_from(sorted(record)))]
    return dumps(record)


any_bytes = st.binary(max_size=2048)


def check_telemetry(result: Telemetry | Invalid) -> None:
    """A record must be usable as it is: keyed, re-encoded and re-validated identically."""
    if isinstance(result, Invalid):
        assert isinstance(result.reason, str) and result.reason
        return
    assert isinstance(result, Telemetry)
    key = result.asset_id.encode()
    assert all(math.isfinite(value) for value in result.signals.values())
    again = validate_telemetry(result.to_bytes(), key, MAX_BYTES)
    assert isinstance(again, Telemetry), again
    assert abs(again.ts_ms - result.ts_ms) < 1.0, "the contract keeps milliseconds"
    assert (again.asset_id, again.signals, again.cycle) == (
        result.asset_id,
        result.signals,
        result.cycle,
    )


@FUZZ
@given(value=st.one_of(any_bytes, telemetry_like()), key=st.one_of(st.none(), any_bytes))
@example(value=b'{"asset_id":"A\\ud800","ts":1,"signals":{"s":1}}', key=b"A")
@example(value=b'{"asset_id":"u","ts":"0001-01-01 00:00:00","signals":{"s":0}}', key=b"u")
def test_telemetry_validator_never_raises(value: bytes, key: bytes | None) -> None:
    check_telemetry(validate_telemetry(value, key, MAX_BYTES))


@FUZZ
@given(value=st.one_of(any_bytes, tesla_json_like(), tesla_protobuf_like()))
@example(value=b"\n\x07\x08\x96\x02\x12\x02\n\x00\x12\x02\x08\x01")
@example(value=b'{"vin":"V\\ud800","createdAt":1,"data":[{"key":"Soc","value":{"intValue":1}}]}')
def test_tesla_decoder_never_raises(value: bytes) -> None:
    check_telemetry(decode_tesla(value, MAX_BYTES))


@FUZZ
@given(value=st.one_of(any_bytes, features_like()))
def test_features_parser_never_raises(value: bytes) -> None:
    result = parse_feature_record(value, MAX_BYTES)
    if isinstance(result, Invalid):
        assert result.reason
    else:
        assert isinstance(result, FeatureRecord)
        result.asset_id.encode()
        assert all(math.isfinite(value) for value in result.features.values())


@FUZZ
@given(body=st.one_of(any_bytes, telemetry_like(), st.lists(telemetry_like(), max_size=3)))
def test_http_batch_parser_never_raises(body: bytes | list[bytes]) -> None:
    if isinstance(body, list):
        body = b"[" + b",".join(body) + b"]"
    result = parse_batch(body, MAX_BYTES, MAX_BYTES)
    if isinstance(result, Refusal):
        assert result.status == 400 and result.body["error"]
    else:
        for record in result:
            check_telemetry(record)
