"""Hostile input: bad messages of many kinds for every input topic, and valid traffic to mix in.

Each bad message is one that a buggy or malicious producer really sends (truncated
writes, lax JSON encoders, wrong types, megabyte payloads, broken encodings, missing
keys, garbage on the binary Tesla topic, incomplete upstream feature records). The
generators are seeded: the same call gives the same bytes.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tesla_protocol.telemetry import vehicle_data_pb2

from streamapp.contracts.codec import Invalid, format_ts
from streamapp.contracts.tesla import decode_tesla
from streamapp.sim.fleet import Simulation, messages

START_MS = 1_795_320_000_000.0
TWO_MB = 2 * 1024 * 1024
VALID_VIN_PREFIX = "5YJ3E1EA7KF9"
MODEL_FEATURES = [
    "s2_mean",
    "s3_mean",
    "s4_mean",
    "s7_mean",
    "s8_mean",
    "s9_mean",
    "s11_mean",
    "s12_mean",
    "s13_mean",
    "s14_mean",
    "s15_mean",
    "s17_mean",
    "s20_mean",
    "s21_mean",
]


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record to produce; `kind` is "valid" or the kind of damage."""

    kind: str
    key: bytes | None
    value: bytes | None

    @property
    def bad(self) -> bool:
        return self.kind != "valid"


Maker = Callable[[random.Random, int], Message]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _telemetry(asset: str, i: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "asset_id": asset,
        "ts": format_ts(START_MS + i * 1000.0),
        "signals": {"s2": 642.5, "s3": 1590.1},
    }
    record.update(fields)
    return record


def _big(size: int, rng: random.Random) -> str:
    return rng.randbytes(size // 2).hex()


def _without(record: dict, name: str) -> dict:
    return {k: v for k, v in record.items() if k != name}


def _bad(kind: str, key: bytes | None, value: bytes | None) -> Message:
    return Message(kind, key, value)


# --- telemetry ------------------------------------------------------------------------------


def _asset(i: int) -> str:
    return f"BAD-{i % 37:04d}"


TELEMETRY_KINDS: dict[str, Maker] = {
    "truncated_json": lambda rng, i: _bad(
        "truncated_json", _asset(i).encode(), _json(_telemetry(_asset(i), i))[: rng.randint(1, 60)]
    ),
    "wrong_types": lambda rng, i: _bad(
        "wrong_types",
        _asset(i).encode(),
        _json(
            rng.choice(
                [
                    _telemetry(_asset(i), i, signals={"s2": "642.5"}),
                    _telemetry(_asset(i), i, signals=[642.5]),
                    _telemetry(_asset(i), i, ts=True),
                    _telemetry(_asset(i), i, asset_id=12345),
                    _telemetry(_asset(i), i, cycle="12"),
                    _telemetry(_asset(i), i, metadata=[1, 2]),
                    _telemetry(_asset(i), i, signals={"s2": True}),
                ]
            )
        ),
    ),
    "nan_literal": lambda rng, i: _bad(
        "nan_literal", _asset(i).encode(), _json(_telemetry(_asset(i), i)).replace(b"642.5", b"NaN")
    ),
    "infinity_literal": lambda rng, i: _bad(
        "infinity_literal",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i)).replace(b"1590.1", b"-Infinity"),
    ),
    "huge_float": lambda rng, i: _bad(
        "huge_float",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i)).replace(b"642.5", b"1e400"),
    ),
    "huge_integer": lambda rng, i: _bad(
        "huge_integer",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i)).replace(b"642.5", b"9" * 5000),
    ),
    "huge_cycle": lambda rng, i: _bad(
        "huge_cycle", _asset(i).encode(), _json(_telemetry(_asset(i), i, cycle=2**80))
    ),
    "deep_nesting": lambda rng, i: _bad(
        "deep_nesting",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i))[:-1]
        + b',"metadata":'
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}",
    ),
    "nesting_over_limit": lambda rng, i: _bad(
        "nesting_over_limit",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i))[:-1] + b',"metadata":' + b'{"a":' * 40 + b"1" + b"}" * 41,
    ),
    "oversized_2mb": lambda rng, i: _bad(
        "oversized_2mb",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i, metadata={"blob": _big(TWO_MB, rng)})),
    ),
    "invalid_utf8": lambda rng, i: _bad(
        "invalid_utf8",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i)).replace(_asset(i).encode(), b"BAD-\xff\xfe\xc3"),
    ),
    "lone_surrogate": lambda rng, i: _bad(
        "lone_surrogate",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i)).replace(_asset(i).encode(), b"BAD-\\ud800"),
    ),
    "empty_key": lambda rng, i: _bad("empty_key", b"", _json(_telemetry(_asset(i), i))),
    "missing_key": lambda rng, i: _bad("missing_key", None, _json(_telemetry(_asset(i), i))),
    "null_value": lambda rng, i: _bad("null_value", _asset(i).encode(), None),
    "empty_value": lambda rng, i: _bad("empty_value", _asset(i).encode(), b""),
    "json_null": lambda rng, i: _bad(
        "json_null", _asset(i).encode(), rng.choice([b"null", b"[]", b'"text"', b"42", b"true"])
    ),
    "null_fields": lambda rng, i: _bad(
        "null_fields",
        _asset(i).encode(),
        _json(_telemetry(_asset(i), i, **{rng.choice(["asset_id", "ts", "signals"]): None})),
    ),
    "missing_fields": lambda rng, i: _bad(
        "missing_fields",
        _asset(i).encode(),
        _json(_without(_telemetry(_asset(i), i), rng.choice(["asset_id", "ts", "signals"]))),
    ),
    "ancient_ts": lambda rng, i: _bad(
        "ancient_ts", _asset(i).encode(), _json(_telemetry(_asset(i), i, ts="0001-01-01T00:00:00Z"))
    ),
    "random_bytes": lambda rng, i: _bad(
        "random_bytes", _asset(i).encode(), rng.randbytes(rng.randint(1, 300))
    ),
}


# --- tesla_V --------------------------------------------------------------------------------


def _vin(i: int) -> str:
    return f"5YJ3E1EA7KF{i % 40:06d}"


def tesla_protojson(vin: str, ts_ms: float, speed: float, soc: float) -> dict[str, object]:
    return {
        "data": [
            {"key": "VehicleSpeed", "value": {"stringValue": f"{speed:.1f}"}},
            {"key": "Soc", "value": {"doubleValue": soc}},
            {"key": "Odometer", "value": {"longValue": str(int(ts_ms // 1000) % 100000)}},
            {"key": "Location", "value": {"locationValue": {"latitude": 37.4, "longitude": -122}}},
        ],
        "createdAt": format_ts(ts_ms),
        "vin": vin,
        "isResend": False,
    }


def tesla_protobuf(
    vin: str, ts_ms: float, speed: float, soc: float, field: int | None = None
) -> bytes:
    payload = vehicle_data_pb2.Payload(vin=vin, is_resend=False)
    payload.created_at.seconds = int(ts_ms // 1000)
    payload.created_at.nanos = int(ts_ms % 1000) * 1_000_000
    datum = payload.data.add(key=vehicle_data_pb2.Field.Value("VehicleSpeed"))
    datum.value.double_value = speed
    datum = payload.data.add(key=vehicle_data_pb2.Field.Value("Soc") if field is None else field)
    datum.value.float_value = soc
    return payload.SerializeToString()


def _tesla_record(i: int, **fields: object) -> dict[str, object]:
    record = tesla_protojson(_vin(i), START_MS + i * 1000.0, 50.0, 80.0)
    record.update(fields)
    return record


def _random_garbage(rng: random.Random, i: int) -> Message:
    """Random bytes that are not, by chance, a decodable Payload."""
    while True:
        value = rng.randbytes(rng.randint(1, 400))
        if isinstance(decode_tesla(value, 1 << 20), Invalid):
            return _bad("random_bytes", _vin(i).encode(), value)


TESLA_KINDS: dict[str, Maker] = {
    "random_bytes": _random_garbage,
    "unknown_value_type": lambda rng, i: _bad(
        "unknown_value_type",
        _vin(i).encode(),
        _json(_tesla_record(i, data=[{"key": "Soc", "value": {"quantumValue": 1}}])),
    ),
    "unknown_field_number": lambda rng, i: _bad(
        "unknown_field_number",
        _vin(i).encode(),
        tesla_protobuf(_vin(i), START_MS + i * 1000.0, 50.0, 80.0, field=rng.randint(5000, 9000)),
    ),
    "protobuf_no_created_at": lambda rng, i: _bad(
        "protobuf_no_created_at",
        _vin(i).encode(),
        vehicle_data_pb2.Payload(vin=_vin(i)).SerializeToString() + b"\x20\x01",
    ),
    "truncated_protobuf": lambda rng, i: _bad(
        "truncated_protobuf",
        _vin(i).encode(),
        tesla_protobuf(_vin(i), START_MS + i * 1000.0, 50.0, 80.0)[:-3],
    ),
    "truncated_json": lambda rng, i: _bad(
        "truncated_json", _vin(i).encode(), _json(_tesla_record(i))[: rng.randint(2, 80)]
    ),
    "nan_literal": lambda rng, i: _bad(
        "nan_literal",
        _vin(i).encode(),
        _json(_tesla_record(i)).replace(b'"doubleValue":80.0', b'"doubleValue":NaN'),
    ),
    "no_numeric_data": lambda rng, i: _bad(
        "no_numeric_data",
        _vin(i).encode(),
        _json(_tesla_record(i, data=[{"key": "Gear", "value": {"shiftStateValue": "D"}}])),
    ),
    "missing_vin": lambda rng, i: _bad(
        "missing_vin", _vin(i).encode(), _json(_tesla_record(i, vin=None))
    ),
    "wrong_types": lambda rng, i: _bad(
        "wrong_types",
        _vin(i).encode(),
        _json(_tesla_record(i, **rng.choice([{"data": {"Soc": 1}}, {"createdAt": [1]}]))),
    ),
    "invalid_utf8": lambda rng, i: _bad(
        "invalid_utf8", _vin(i).encode(), _json(_tesla_record(i)).replace(b"Soc", b"S\xffc")
    ),
    "oversized_2mb": lambda rng, i: _bad(
        "oversized_2mb",
        _vin(i).encode(),
        _json(_tesla_record(i, padding=_big(TWO_MB, rng))),
    ),
    "null_value": lambda rng, i: _bad("null_value", _vin(i).encode(), None),
    "empty_value": lambda rng, i: _bad("empty_value", None, b""),
}


# --- extracted-features ---------------------------------------------------------------------


def _upstream_asset(i: int) -> str:
    return f"UPSTREAM-{i % 30:03d}"


def features_record(asset: str, index: int, rng: random.Random) -> dict[str, object]:
    """An upstream service's record in BRIEF's contract, with every model feature."""
    end = START_MS + (index + 1) * 10_000.0
    levels = dict.fromkeys(MODEL_FEATURES, 100.0) | {"s2_mean": 642.5, "s9_mean": 9065.0}
    return {
        "asset_id": asset,
        "sensor_id": "SENSOR001",
        "features": {name: round(v * rng.uniform(0.999, 1.001), 6) for name, v in levels.items()},
        "timestamp": format_ts(end),
        "window": {"start": format_ts(end - 10_000.0), "end": format_ts(end), "count": 10},
        "metadata": {"source": "extraction-features-service"},
    }


def _features_bad(kind: str, mutate: Callable[[dict, random.Random], bytes]) -> Maker:
    def make(rng: random.Random, i: int) -> Message:
        asset = f"BADFEAT-{i % 23:03d}"
        return _bad(kind, asset.encode(), mutate(features_record(asset, i, rng), rng))

    return make


FEATURES_KINDS: dict[str, Maker] = {
    "missing_asset_id": _features_bad(
        "missing_asset_id", lambda r, _: _json(_without(r, "asset_id"))
    ),
    "missing_features": _features_bad(
        "missing_features", lambda r, _: _json(_without(r, "features"))
    ),
    "missing_model_features": _features_bad(
        "missing_model_features",
        lambda r, rng: _json(r | {"features": {"rms": 10.5, "kurtosis": 2.3}}),
    ),
    "features_not_numbers": _features_bad(
        "features_not_numbers",
        lambda r, _: _json(r | {"features": {**r["features"], "s2_mean": "642.5"}}),
    ),
    "null_feature": _features_bad(
        "null_feature", lambda r, _: _json(r | {"features": {**r["features"], "s3_mean": None}})
    ),
    "nan_literal": _features_bad(
        "nan_literal", lambda r, _: _json(r).replace(b'"s2_mean":', b'"s2_mean":NaN,"x":')
    ),
    "bad_timestamp": _features_bad(
        "bad_timestamp", lambda r, _: _json(r | {"timestamp": "yesterday"})
    ),
    "bad_window_end": _features_bad(
        "bad_window_end", lambda r, _: _json(r | {"window": {"end": {"at": 1}}})
    ),
    "truncated_json": _features_bad(
        "truncated_json", lambda r, rng: _json(r)[: rng.randint(1, 90)]
    ),
    "invalid_utf8": _features_bad(
        "invalid_utf8", lambda r, _: _json(r).replace(b"SENSOR", b"\xc3(")
    ),
    "oversized_2mb": _features_bad(
        "oversized_2mb", lambda r, rng: _json(r | {"metadata": {"blob": _big(TWO_MB, rng)}})
    ),
    "deep_nesting": _features_bad(
        "deep_nesting", lambda r, _: _json(r)[:-1] + b',"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    ),
    "not_an_object": _features_bad(
        "not_an_object", lambda r, rng: rng.choice([b"null", b"[1]", b"7"])
    ),
}


def bad_messages(
    kinds: dict[str, Maker], count: int, seed: int, big_every: int = 1000
) -> list[Message]:
    """`count` bad messages cycling through the kinds; 2 MB ones only every `big_every`."""
    rng = random.Random(seed)
    small = [make for kind, make in kinds.items() if kind != "oversized_2mb"]
    out = []
    for i in range(count):
        if i % big_every == big_every - 1 and "oversized_2mb" in kinds:
            out.append(kinds["oversized_2mb"](rng, i))
        else:
            out.append(small[i % len(small)](rng, i))
    return out


def mix(valid: list[Message], bad: list[Message], seed: int) -> list[Message]:
    """Bad messages spread at random positions; valid ones keep their order."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(len(valid) + len(bad)), len(bad)))
    out: list[Message] = []
    valid_iter, bad_iter = iter(valid), iter(bad)
    taken = set(slots)
    for position in range(len(valid) + len(bad)):
        out.append(next(bad_iter) if position in taken else next(valid_iter))
    return out


def valid_telemetry(assets: int, count: int, seed: int) -> list[Message]:
    """Simulated engines, round-robin, keyed by asset id."""
    pairs: Iterator[tuple[bytes, bytes]] = messages(Simulation(assets, seed=seed))
    return [Message("valid", key, value) for key, value in itertools.islice(pairs, count)]


def valid_tesla(vins: int, count: int, seed: int) -> list[Message]:
    """Tesla records, protojson and protobuf alternately, one a second per VIN."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        vin = f"{VALID_VIN_PREFIX}{i % vins:05d}"
        ts_ms = START_MS + (i // vins) * 1000.0 + 123.0
        speed, soc = rng.uniform(0, 120), rng.uniform(10, 95)
        value = (
            tesla_protobuf(vin, ts_ms, speed, soc)
            if i % 2
            else _json(tesla_protojson(vin, ts_ms, speed, soc))
        )
        out.append(Message("valid", vin.encode(), value))
    return out


def valid_features(assets: int, count: int, seed: int) -> list[Message]:
    """Upstream feature records, window ends increasing per asset."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        asset = f"UPSTREAM-{i % assets:03d}"
        out.append(
            Message("valid", asset.encode(), _json(features_record(asset, i // assets, rng)))
        )
    return out
