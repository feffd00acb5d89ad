"""Simulated fleets. Same seed, same messages (values, order and timestamps).

Engines follow C-MAPSS's shape: operating regimes, noisy sensors named like the
C-MAPSS columns (`s2`, `s3`, ...) and an exponential wear term that grows until the
engine fails, after which it is replaced by a new engine (asset id `<slot>-R<n>`) that
starts at cycle 1, so no asset's history runs backwards. EVs report
state of charge, pack voltage/current, temperatures and odometer, with driving and
charging sessions.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from streamapp.contracts.codec import format_ts

# Healthy FD001 levels and the direction each sensor moves as the engine wears.
ENGINE_SENSORS: dict[str, tuple[float, float, float]] = {
    # name: (healthy mean, noise std, drift at failure)
    "s2": (642.5, 0.5, 1.8),
    "s3": (1590.5, 6.0, 25.0),
    "s4": (1409.0, 9.0, 40.0),
    "s7": (553.4, 0.9, -3.0),
    "s8": (2388.1, 0.07, 0.25),
    "s9": (9065.0, 22.0, 60.0),
    "s11": (47.5, 0.27, 1.2),
    "s12": (521.4, 0.74, -2.8),
    "s13": (2388.1, 0.07, 0.25),
    "s14": (8143.0, 19.0, 50.0),
    "s15": (8.44, 0.037, 0.15),
    "s17": (393.0, 1.5, 5.0),
    "s20": (38.8, 0.18, -0.8),
    "s21": (23.29, 0.11, -0.45),
}
# Operating regimes (altitude kft, Mach, throttle) and how each scales sensor levels.
REGIMES = ((0.0, 0.0, 100.0, 1.0), (20.0, 0.7, 100.0, 0.94), (42.0, 0.84, 100.0, 0.88))
INVALID_KINDS = ("truncated", "no_asset", "nan_literal", "text_signal", "bad_ts", "not_json")


@dataclass(slots=True)
class _Engine:
    slot: str
    life: int
    wear_rate: float
    cycle: int = 0
    replacements: int = 0

    @property
    def asset_id(self) -> str:
        """A replacement is a new asset: its cycles and features must not extend the old one's."""
        return f"{self.slot}-R{self.replacements}" if self.replacements else self.slot


@dataclass(slots=True)
class _Vehicle:
    vin: str
    soc: float
    odometer: float
    charging: bool = False
    pack_temp: float = 25.0
    remaining_in_session: int = 0


@dataclass(slots=True)
class Simulation:
    """Parameters of one simulated run."""

    assets: int
    kind: Literal["engine", "ev"] = "engine"
    seed: int = 0
    invalid_fraction: float = 0.0
    start_ms: float = 1_795_320_000_000.0
    interval_ms: float = 1000.0
    regimes: int = 1
    rng: random.Random = field(init=False, repr=False, compare=False)
    """Seeded from `seed`; `messages` draws the fleet and every value from it."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def _new_engine(rng: random.Random, slot: str) -> _Engine:
    life = rng.randint(128, 362)
    return _Engine(slot, life, rng.uniform(3.0, 6.0))


def _engine_record(rng: random.Random, engine: _Engine, ts_ms: float, regimes: int) -> dict:
    if engine.cycle >= engine.life:
        replacement = _new_engine(rng, engine.slot)
        engine.life, engine.wear_rate, engine.cycle = replacement.life, replacement.wear_rate, 0
        engine.replacements += 1
    engine.cycle += 1
    health = engine.cycle / engine.life
    wear = math.expm1(engine.wear_rate * health) / math.expm1(engine.wear_rate)
    altitude, mach, throttle, level = REGIMES[rng.randrange(regimes)]
    signals = {
        "op1": round(altitude + rng.gauss(0, 0.002), 4),
        "op2": round(mach + rng.gauss(0, 0.0003), 5),
        "op3": throttle,
    }
    for name, (mean, noise, drift) in ENGINE_SENSORS.items():
        signals[name] = round(mean * level + drift * wear + rng.gauss(0, noise), 4)
    return {
        "asset_id": engine.asset_id,
        "ts": format_ts(ts_ms),
        "cycle": engine.cycle,
        "signals": signals,
        "metadata": {"source": "simulator"},
    }


def _ev_record(rng: random.Random, car: _Vehicle, ts_ms: float) -> dict:
    if car.remaining_in_session <= 0:
        car.charging = car.soc < 30 or (not car.charging and rng.random() < 0.1)
        car.remaining_in_session = rng.randint(30, 300)
    car.remaining_in_session -= 1
    if car.charging:
        current = -rng.uniform(50, 150)
        car.soc = min(100.0, car.soc + 0.05)
        speed = 0.0
    else:
        speed = max(0.0, rng.gauss(55, 20))
        current = speed * 1.6 + rng.gauss(0, 5)
        car.soc = max(0.0, car.soc - speed * 0.0004)
        car.odometer += speed / 3600.0
    car.pack_temp += 0.02 * (abs(current) / 100.0) - 0.01 * (car.pack_temp - 25.0)
    voltage = 340 + 60 * car.soc / 100.0 - current * 0.02 + rng.gauss(0, 0.3)
    signals = {
        "soc": round(car.soc, 3),
        "pack_voltage": round(voltage, 3),
        "pack_current": round(current, 3),
        "pack_temp": round(car.pack_temp, 3),
        "cabin_temp": round(21 + rng.gauss(0, 0.3), 3),
        "speed": round(speed, 2),
        "odometer": round(car.odometer, 3),
        "charging": 1.0 if car.charging else 0.0,
    }
    return {
        "asset_id": car.vin,
        "ts": format_ts(ts_ms),
        "signals": signals,
        "metadata": {"source": "simulator"},
    }


def _invalid(rng: random.Random, record: dict) -> bytes:
    kind = INVALID_KINDS[rng.randrange(len(INVALID_KINDS))]
    text = json.dumps(record)
    if kind == "truncated":
        return text[: len(text) // 2].encode()
    if kind == "no_asset":
        record = {k: v for k, v in record.items() if k != "asset_id"}
    elif kind == "nan_literal":
        record = {**record, "signals": {**record["signals"], "nan": math.nan}}
    elif kind == "text_signal":
        record = {**record, "signals": {**record["signals"], "bad": "high"}}
    elif kind == "bad_ts":
        record = {**record, "ts": "yesterday"}
    else:
        return b"\x00not json at all"
    return json.dumps(record).encode()


def messages(sim: Simulation) -> Iterator[tuple[bytes, bytes]]:
    """An endless stream of (key, value) pairs, round-robin over the assets."""
    rng = sim.rng
    if sim.kind == "engine":
        fleet: list = [_new_engine(rng, f"ENGINE-{i + 1:04d}") for i in range(sim.assets)]
    else:
        fleet = [
            _Vehicle(f"5YJ3E1EA{i + 1:09d}", rng.uniform(40, 95), rng.uniform(1e3, 8e4))
            for i in range(sim.assets)
        ]
    tick = 0
    while True:
        ts_ms = sim.start_ms + tick * sim.interval_ms
        for asset in fleet:
            if sim.kind == "engine":
                record = _engine_record(rng, asset, ts_ms, sim.regimes)
            else:
                record = _ev_record(rng, asset, ts_ms)
            key = record["asset_id"].encode()
            if sim.invalid_fraction and rng.random() < sim.invalid_fraction:
                yield key, _invalid(rng, record)
            else:
                yield key, json.dumps(record, separators=(",", ":")).encode()
        tick += 1
