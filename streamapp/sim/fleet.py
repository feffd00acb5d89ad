"""Simulated fleets. Same seed, same messages (values, order and timestamps).

Engines follow C-MAPSS's shape: operating regimes, noisy sensors named like the
C-MAPSS columns (`s2`, `s3`, ...) and an exponential wear term that grows until the
engine fails, after which it is replaced by a new engine (asset id `<slot>-R<n>`) that
starts at cycle 1, so no asset's history runs backwards. EVs come from
`streamapp.sim.ev` (driving and charge sessions with a true battery fade), one record
per EV and tick, each VIN's records in its own event time from `start_ms` (days pass
in minutes). Rotating machines (pumps) report one vibration sample and a bearing
temperature per tick; a bearing wears to failure along one of several failure modes
(impulsive outer-race defect: kurtosis and crest factor rise first; imbalance: RMS grows;
lubrication loss: broadband noise and heat), and a failed pump is replaced like an
engine. A mixed fleet interleaves all three kinds.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from streamapp.contracts.codec import format_ts
from streamapp.sim import ev

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


#: Failure modes of a simulated bearing: (impulse rate at failure, RMS growth, heat).
FAILURE_MODES: dict[str, tuple[float, float, float]] = {
    "outer_race": (0.30, 0.8, 4.0),
    "imbalance": (0.02, 2.5, 3.0),
    "lubrication": (0.08, 1.4, 18.0),
}
HEALTHY_RMS = 0.5  # g


@dataclass(slots=True)
class _Machine:
    slot: str
    life: int  # ticks from installation to failure
    mode: str
    severity: float  # how strongly this unit's mode shows
    tick: int = 0
    replacements: int = 0
    temperature: float = 45.0

    @property
    def asset_id(self) -> str:
        return f"{self.slot}-R{self.replacements}" if self.replacements else self.slot


Kind = Literal["engine", "ev", "rotating", "mixed"]


@dataclass(slots=True)
class Simulation:
    """Parameters of one simulated run."""

    assets: int
    kind: Kind = "engine"
    seed: int = 0
    invalid_fraction: float = 0.0
    start_ms: float = 1_795_320_000_000.0
    interval_ms: float = 1000.0
    regimes: int = 1
    run_to_failure: bool = False
    """Each engine and pump runs one life, to failure, then goes silent (training data:
    every asset's last record is its failure); the stream ends once all have failed."""
    ev_days: int = 730
    """Days of event time the EVs live; each goes silent after its last."""
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


def _new_machine(rng: random.Random, slot: str) -> _Machine:
    mode = rng.choice(sorted(FAILURE_MODES))
    return _Machine(slot, rng.randint(1800, 7200), mode, rng.uniform(0.7, 1.3))


def _machine_record(rng: random.Random, machine: _Machine, ts_ms: float) -> dict:
    """One vibration sample: Gaussian, scaled up and spiked more often as the bearing wears."""
    if machine.tick >= machine.life:
        replacement = _new_machine(rng, machine.slot)
        machine.life, machine.mode, machine.severity = (
            replacement.life,
            replacement.mode,
            replacement.severity,
        )
        machine.tick, machine.temperature = 0, 45.0
        machine.replacements += 1
    machine.tick += 1
    health = machine.tick / machine.life
    wear = health**3  # defects stay small for most of a bearing's life
    impulses, growth, heat = FAILURE_MODES[machine.mode]
    rms = HEALTHY_RMS * (1.0 + growth * machine.severity * wear)
    sample = rng.gauss(0.0, rms)
    if rng.random() < impulses * machine.severity * wear:
        sample += rng.choice((-1.0, 1.0)) * rms * rng.uniform(4.0, 9.0)
    target = 45.0 + heat * machine.severity * wear
    machine.temperature += 0.05 * (target - machine.temperature) + rng.gauss(0, 0.05)
    return {
        "asset_id": machine.asset_id,
        "ts": format_ts(ts_ms),
        "signals": {
            "vibration": round(sample, 4),
            "bearing_temp": round(machine.temperature, 3),
        },
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


def _fleet(sim: Simulation) -> list[tuple[str, Any]]:
    """(kind, asset) per slot; a mixed fleet cycles engines, pumps and vehicles."""
    rng = sim.rng
    kinds = ("engine", "rotating", "ev") if sim.kind == "mixed" else (sim.kind,)
    fleet: list[tuple[str, Any]] = []
    for i in range(sim.assets):
        kind = kinds[i % len(kinds)]
        if kind == "engine":
            fleet.append((kind, _new_engine(rng, f"ENGINE-{i + 1:04d}")))
        elif kind == "rotating":
            fleet.append((kind, _new_machine(rng, f"PUMP-{i + 1:04d}")))
        else:
            fleet.append((kind, None))  # its records come from `streamapp.sim.ev`
    return fleet


def _failed(kind: str, asset: Any) -> bool:
    """An engine or pump at the end of its life (EVs go silent at the end of their days)."""
    if kind == "engine":
        return bool(asset.cycle >= asset.life)
    return kind == "rotating" and bool(asset.tick >= asset.life)


def messages(sim: Simulation) -> Iterator[tuple[bytes, bytes]]:
    """A stream of (key, value) pairs, round-robin over the assets: endless, unless every
    asset runs to failure (`run_to_failure`) and the EVs' days are over."""
    rng = sim.rng
    fleet = _fleet(sim)
    vehicles = sum(kind == "ev" for kind, _ in fleet)
    ev_records = ev.messages(ev.EvFleet(vehicles, sim.ev_days, sim.seed, sim.start_ms))
    tick = 0
    while fleet:
        ts_ms = sim.start_ms + tick * sim.interval_ms
        if sim.run_to_failure:
            fleet = [(kind, asset) for kind, asset in fleet if not _failed(kind, asset)]
        for kind, asset in fleet:
            if kind == "ev":
                pair = next(ev_records, None)
                if pair is None:  # every EV's days are over
                    fleet = [(k, a) for k, a in fleet if k != "ev"]
                    break
                key, value = pair
                if sim.invalid_fraction and rng.random() < sim.invalid_fraction:
                    yield key, _invalid(rng, json.loads(value))
                else:
                    yield key, value
                continue
            if kind == "engine":
                record = _engine_record(rng, asset, ts_ms, sim.regimes)
            else:
                record = _machine_record(rng, asset, ts_ms)
            key = record["asset_id"].encode()
            if sim.invalid_fraction and rng.random() < sim.invalid_fraction:
                yield key, _invalid(rng, record)
            else:
                yield key, json.dumps(record, separators=(",", ":")).encode()
        tick += 1
