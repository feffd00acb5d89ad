"""Tesla decoding of protobuf payloads and of their protojson form (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamapp.contracts.codec import Invalid, format_ts
from streamapp.contracts.telemetry import Telemetry
from streamapp.contracts.tesla import decode_tesla
from tests.contracts.tesla_payloads import VIN, protobuf_payload

LIMIT = 1024 * 1024


def protojson(**overrides: object) -> bytes:
    record = {
        "data": [
            {"key": "VehicleSpeed", "value": {"stringValue": "55"}},
            {"key": "Soc", "value": {"doubleValue": 80.5}},
            {"key": "PackVoltage", "value": {"floatValue": 398.25}},
            {"key": "ChargeAmps", "value": {"intValue": 32}},
            {"key": "Odometer", "value": {"longValue": "123456"}},
            {
                "key": "Location",
                "value": {"locationValue": {"latitude": 37.4, "longitude": -122.1}},
            },
            {"key": "Gear", "value": {"shiftStateValue": "ShiftStateD"}},
            {"key": "DCDCEnable", "value": {"booleanValue": True}},
            {"key": "Version", "value": {"stringValue": "2026.44.1"}},
        ],
        "createdAt": "2026-11-22T06:00:00.123Z",
        "vin": VIN,
        "isResend": False,
    }
    record.update(overrides)
    return json.dumps(record).encode()


def test_protojson_keeps_every_numeric_form() -> None:
    result = decode_tesla(protojson(), LIMIT)
    assert isinstance(result, Telemetry)
    assert result.asset_id == VIN
    assert format_ts(result.ts_ms) == "2026-11-22T06:00:00.123Z"
    assert result.signals == {
        "VehicleSpeed": 55.0,
        "Soc": 80.5,
        "PackVoltage": 398.25,
        "ChargeAmps": 32.0,
        "Odometer": 123456.0,
        "Location_latitude": 37.4,
        "Location_longitude": -122.1,
        "DCDCEnable": 1.0,
    }
    assert result.metadata == {"source": "tesla_V", "is_resend": False}


def test_protobuf_payload_decodes_like_its_protojson() -> None:
    result = decode_tesla(protobuf_payload(), LIMIT)
    assert isinstance(result, Telemetry)
    assert result.asset_id == VIN
    assert format_ts(result.ts_ms) == "2026-11-22T06:00:00.123Z"
    assert result.signals["VehicleSpeed"] == 55.0
    assert result.signals["Soc"] == 80.5
    assert result.signals["Odometer"] == 123456.0
    assert result.signals["Location_latitude"] == pytest.approx(37.4)
    assert "Gear" not in result.signals


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (protojson(vin=""), "vin"),
        (protojson(vin=None), "vin"),
        (protojson(createdAt="soon"), "createdAt"),
        (protojson(data="x"), "data must be"),
        (protojson(data=[{"key": "Soc", "value": {"quantumValue": 1}}]), "unknown value type"),
        (
            protojson(data=[{"key": "Soc", "value": {"doubleValue": 1, "intValue": 2}}]),
            "exactly one",
        ),
        (protojson(data=[{"key": "Gear", "value": {"shiftStateValue": "D"}}]), "no numeric data"),
        (protojson(data=[1]), "datum"),
        (b"\x08\x96\x01\xff\xff\xff", "protobuf"),
        (b"", "empty"),
        (b"{not json", "invalid JSON"),
    ],
)
def test_bad_tesla_records_are_refused(value: bytes, reason: str) -> None:
    result = decode_tesla(value, LIMIT)
    assert isinstance(result, Invalid)
    assert reason in result.reason


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(value: bytes) -> None:
    assert isinstance(decode_tesla(value, LIMIT), Telemetry | Invalid)


@pytest.mark.parametrize(
    ("datum", "charging"),
    [
        ({"detailedChargeStateValue": "DetailedChargeStateCharging"}, 1.0),
        ({"detailedChargeStateValue": "DetailedChargeStateComplete"}, 0.0),
        ({"stringValue": "Charging"}, 1.0),
        ({"stringValue": "Disconnected"}, 0.0),
    ],
)
def test_the_charge_state_becomes_one_while_charging(datum: dict, charging: float) -> None:
    value = protojson(data=[{"key": "DetailedChargeState", "value": datum}])
    result = decode_tesla(value, LIMIT)
    assert isinstance(result, Telemetry)
    assert result.signals == {"DetailedChargeState": charging}


def test_a_protobuf_charge_state_enum_decodes_like_its_protojson() -> None:
    from tesla_protocol.telemetry import vehicle_data_pb2

    payload = vehicle_data_pb2.Payload(vin=VIN)
    payload.created_at.seconds = 1_795_000_000
    datum = payload.data.add()
    datum.key = vehicle_data_pb2.ChargeState
    datum.value.charging_value = vehicle_data_pb2.ChargeStateCharging
    result = decode_tesla(payload.SerializeToString(), LIMIT)
    assert isinstance(result, Telemetry)
    assert result.signals == {"ChargeState": 1.0}
