"""Tesla fleet-telemetry records (protobuf `Payload` or its protojson form) -> `Telemetry`.

Only numeric data is kept: numbers in any numeric value type or in `stringValue`,
booleans as 0/1, locations as `<Field>_latitude` / `<Field>_longitude`, and the charge
state (`DetailedChargeState`, `ChargeState`, enum or text) as 1 while charging, else 0
(the battery tracker's charge sessions need it). Other enum and text values are
skipped; a value type the bindings do not know is refused, so a schema change shows up
in the dead-letter queue instead of passing unseen.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.message import DecodeError
from tesla_protocol.telemetry import vehicle_data_pb2

from streamapp.contracts.codec import MAX_ASSET_ID_CHARS, Invalid, decode_json, parse_ts
from streamapp.contracts.telemetry import Telemetry

_NUMERIC_TYPES = ("doubleValue", "floatValue", "intValue", "longValue")
_KNOWN_TYPES = frozenset(
    "".join(part.capitalize() if i else part for i, part in enumerate(field.name.split("_")))
    for field in vehicle_data_pb2.Value.DESCRIPTOR.fields
)
_FIELD_NAMES = {value.number: value.name for value in vehicle_data_pb2.Field.DESCRIPTOR.values}
_SOURCE = "tesla_V"
_CHARGE_STATES = {"detailedChargeStateValue", "chargingValue"}
_CHARGE_STATE_FIELDS = {"DetailedChargeState", "ChargeState"}


def _number(text: Any) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _datum_signals(name: str, value: dict[str, Any]) -> dict[str, float] | Invalid:
    """Numeric signals of one protojson datum (several for a location)."""
    if len(value) != 1:
        return Invalid(f"field {name[:64]!r} must hold exactly one value")
    value_type, content = next(iter(value.items()))
    if value_type not in _KNOWN_TYPES:
        return Invalid(f"unknown value type {value_type[:64]!r} for field {name[:64]!r}")
    if name in _CHARGE_STATE_FIELDS and (
        value_type in _CHARGE_STATES or value_type == "stringValue"
    ):
        if not isinstance(content, str):
            return Invalid(f"field {name!r} must name a charge state")
        return {
            name: 1.0
            if content.removeprefix("DetailedChargeState").removeprefix("ChargeState") == "Charging"
            else 0.0
        }
    if value_type in _NUMERIC_TYPES or value_type == "stringValue":
        if isinstance(content, bool):
            return {}
        number = _number(content)
        return {} if number is None else {name: number}
    if value_type == "booleanValue":
        return {name: 1.0 if content is True else 0.0} if isinstance(content, bool) else {}
    if value_type == "locationValue":
        if not isinstance(content, dict):
            return Invalid(f"field {name[:64]!r} location must be an object")
        latitude = _number(content.get("latitude", 0.0))
        longitude = _number(content.get("longitude", 0.0))
        if latitude is None or longitude is None:
            return Invalid(f"field {name[:64]!r} location is not numeric")
        return {f"{name}_latitude": latitude, f"{name}_longitude": longitude}
    return {}


def _from_protojson(record: Any) -> Telemetry | Invalid:
    if not isinstance(record, dict):
        return Invalid("Tesla record must be a JSON object")
    vin = record.get("vin")
    if not isinstance(vin, str) or not vin.strip() or len(vin) > MAX_ASSET_ID_CHARS:
        return Invalid(f"vin must be a non-empty string of at most {MAX_ASSET_ID_CHARS} characters")
    if "createdAt" not in record:
        return Invalid("createdAt is missing")
    ts_ms = parse_ts(record["createdAt"])
    if isinstance(ts_ms, str):
        return Invalid(f"createdAt: {ts_ms}")
    data = record.get("data")
    if not isinstance(data, list):
        return Invalid("data must be a list of {key, value} objects")
    signals: dict[str, float] = {}
    for datum in data:
        if not isinstance(datum, dict) or not isinstance(datum.get("key"), str):
            return Invalid("each datum must be an object with a string key")
        value = datum.get("value")
        if not isinstance(value, dict):
            return Invalid(f"field {datum['key'][:64]!r} has no value object")
        found = _datum_signals(datum["key"], value)
        if isinstance(found, Invalid):
            return found
        signals.update(found)
    if not signals:
        return Invalid("no numeric data in Tesla record")
    metadata = {"source": _SOURCE, "is_resend": bool(record.get("isResend", False))}
    return Telemetry(vin, ts_ms, signals, None, metadata)


def _protobuf_to_protojson(payload: vehicle_data_pb2.Payload) -> dict[str, Any] | Invalid:
    """The protojson shape of a parsed Payload, so both forms share one normaliser.

    A field number the bindings do not name is refused (proto3 keeps unknown enum
    numbers), like an unknown value type: a schema change must reach the DLQ.
    """
    data = []
    for datum in payload.data:
        field_name = _FIELD_NAMES.get(datum.key)
        if field_name is None:
            return Invalid(f"unknown Tesla field number {datum.key}")
        kind = datum.value.WhichOneof("value")
        if kind is None:
            continue
        content: Any = getattr(datum.value, kind)
        enum = datum.value.DESCRIPTOR.fields_by_name[kind].enum_type
        if enum is not None:  # protojson names enum values
            number = enum.values_by_number.get(content)
            content = number.name if number is not None else str(content)
        elif kind == "location_value":
            content = {"latitude": content.latitude, "longitude": content.longitude}
        elif not isinstance(content, bool | int | float | str):
            continue
        camel = "".join(part.capitalize() if i else part for i, part in enumerate(kind.split("_")))
        data.append({"key": field_name, "value": {camel: content}})
    created = payload.created_at
    return {
        "vin": payload.vin,
        "createdAt": created.seconds * 1000 + created.nanos / 1e6,
        "data": data,
        "isResend": payload.is_resend,
    }


def decode_tesla(value: bytes | None, max_bytes: int) -> Telemetry | Invalid:
    """Normalise one `tesla_V` message, protobuf or protojson, to a telemetry record."""
    if value is None or len(value) == 0:
        return Invalid("empty value")
    if len(value) > max_bytes:
        return Invalid(f"payload too large: {len(value)} bytes > {max_bytes}")
    if value.lstrip()[:1] == b"{":
        decoded = decode_json(value, max_bytes)
        return decoded if isinstance(decoded, Invalid) else _from_protojson(decoded)
    payload = vehicle_data_pb2.Payload()
    try:
        payload.ParseFromString(value)
    except (DecodeError, RuntimeWarning) as exc:
        return Invalid(f"not a Tesla protobuf Payload: {exc}")
    if not payload.HasField("created_at") or payload.created_at.seconds <= 0:
        return Invalid("Tesla protobuf Payload without createdAt")
    record = _protobuf_to_protojson(payload)
    return record if isinstance(record, Invalid) else _from_protojson(record)
