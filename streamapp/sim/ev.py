"""Simulated EV fleets with a known battery truth. Same seed, same records.

Each vehicle is lived day by day in event time: it drives (SoC falls by the energy its
trips use over its true capacity), charges at home on AC or on the road on DC, and
ages: capacity fades with a calendar term in the square root of the pack's age and a
cycle term linear in the energy it has cycled, both varying per VIN, on several
nominal capacities. What its telemetry says is what a real one says: a BMS SoC with
drifting error (larger on DC, and biased on cold packs), the session's energy counter,
power, pack temperature and odometer, with data gaps, duplicates and records a little
out of order. `truth` gives each VIN's true SoH per week and its true end of life, for
tests and for docs/battery.md's accuracy figures.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from streamapp.contracts.codec import format_ts
from streamapp.contracts.telemetry import Telemetry

DAY_MS = 86_400_000.0
#: VIN prefixes the simulator builds on: (nominal kWh, in the shipped vehicle table).
MODELS: tuple[tuple[str, float, bool], ...] = (
    ("5YJ3E1EA", 75.0, True),
    ("5YJ3E1EB", 57.5, True),
    ("7SAYGDEE", 75.0, True),
    ("WVWZZZE1", 58.0, True),
    ("LRWYGCEK", 82.0, False),  # not in the table: nominal learned from its first weeks
)
Protocol = Literal["generic", "tesla"]
#: 2026-01-05, a Monday.
START_MS = 1_767_571_200_000.0


@dataclass(frozen=True, slots=True)
class EvFleet:
    """Parameters of one simulated EV fleet."""

    vehicles: int = 200
    days: int = 730
    seed: int = 0
    start_ms: float = START_MS
    protocol: Protocol = "generic"
    faults: bool = True  # data gaps, duplicates and out-of-order records


@dataclass(slots=True)
class VinTruth:
    """What the simulator knows of one VIN."""

    vin: str
    reference_kwh: float  # what SoH 100 means for it (its nominal, or its first weeks)
    weeks: dict[float, float] = field(default_factory=dict)  # week start -> true SoH
    eol_ms: float | None = None  # when SoH reaches 80 (driving on as before)
    eol_odometer_km: float | None = None


@dataclass(slots=True)
class _Car:
    vin: str
    nominal: float
    known: bool
    c0: float  # capacity when new
    age0_days: float
    calendar: float  # fade per sqrt(year)
    cycle: float  # fade per full equivalent cycle
    km_day: float
    consumption: float  # kWh per km
    home_kw: float  # 0: no home charger
    threshold: float  # charges at home below this SoC
    target: float
    climate: float  # mean ambient C
    garage: float | None  # temperature of its garage (None: parks outside)
    meter_bias: float
    soc: float
    odometer: float
    throughput_kwh: float = 0.0

    def capacity(self, day: float) -> float:
        age_years = (self.age0_days + day) / 365.25
        fec = self.throughput_kwh / self.c0
        return self.c0 * (1.0 - self.calendar * math.sqrt(age_years) - self.cycle * fec)


def _car(rng: random.Random, index: int) -> _Car:
    prefix, nominal, known = MODELS[index % len(MODELS)]
    fleet_use = rng.random() < 0.2  # ride-hailing and delivery: far more km per day
    home = rng.random() < 0.8 and not fleet_use
    return _Car(
        vin=f"{prefix}{rng.randrange(16**9):09X}",
        nominal=nominal,
        known=known,
        c0=nominal * rng.gauss(1.0, 0.012),
        age0_days=rng.uniform(0, 3 * 365) if known else rng.uniform(0, 60),
        calendar=rng.uniform(0.012, 0.03),
        cycle=rng.uniform(4e-5, 1.2e-4),
        km_day=rng.uniform(150, 320) if fleet_use else rng.uniform(15, 90),
        consumption=rng.uniform(0.14, 0.2),
        home_kw=rng.choice((7.4, 11.0)) if home else 0.0,
        threshold=rng.uniform(35, 70),
        target=rng.choice((80.0, 85.0, 90.0)),
        climate=rng.uniform(2, 22),
        garage=rng.uniform(8, 18) if rng.random() < 0.5 else None,
        meter_bias=rng.gauss(1.0, 0.002),
        soc=rng.uniform(40, 90),
        odometer=rng.uniform(1e3, 6e4),
    )


def _ambient(car: _Car, rng: random.Random, day: int, start_ms: float) -> float:
    day_of_year = ((start_ms / DAY_MS) + day) % 365.25
    return (
        car.climate + 11.0 * math.sin(2 * math.pi * (day_of_year - 110) / 365.25) + rng.gauss(0, 3)
    )


Record = tuple[float, dict[str, Any]]  # event time, signals (generic names)


def _charge(
    car: _Car, rng: random.Random, day: int, start: float, target: float, dc: bool, ambient: float
) -> list[Record]:
    """A charge session's readings; updates the car's SoC and throughput."""
    capacity = car.capacity(day)
    pack = ambient + (3.0 if dc else 1.0) + rng.gauss(0, 1.5)
    cold = pack < 10.0
    sample_s = 120.0 if dc else 900.0
    bias_start = rng.gauss(0, 0.35)
    bias_end = rng.gauss(0, 0.9 if dc else 0.35)
    records: list[Record] = []
    soc0 = car.soc
    energy = 0.0
    t = start
    while True:
        progress = (car.soc - soc0) / max(target - soc0, 1e-9)
        bias = bias_start + (bias_end - bias_start) * progress
        shown = car.soc + bias + rng.gauss(0, 0.08)
        if cold:  # a cold pack's BMS overstates the SoC it gains
            shown = soc0 + bias + (car.soc - soc0) * 1.06
        if dc:
            power = 150.0 if car.soc < 50 else max(150.0 - (car.soc - 50) * 3.5, 30.0)
        else:
            power = car.home_kw * (1.0 if car.soc < 95 else 0.5)
        records.append(
            (
                t,
                {
                    "soc": round(min(max(shown, 0.0), 100.0), 2),
                    "charging": 1.0,
                    "charge_energy_kwh": round(energy * car.meter_bias, 3),
                    "charge_power_kw": round(power + rng.gauss(0, 0.1), 2),
                    "pack_temp": round(pack, 1),
                    "odometer": round(car.odometer, 1),
                    "dc": 1.0 if dc else 0.0,
                },
            )
        )
        if car.soc >= target - 1e-9:
            break
        step_kwh = power * sample_s / 3600.0
        gained = min(step_kwh / capacity * 100.0, target - car.soc)
        energy += gained / 100.0 * capacity
        car.soc += gained
        pack += (0.25 if dc else 0.02) * (sample_s / 120.0) * (1.0 if pack < 40 else 0.0)
        t += sample_s * 1000.0
    car.throughput_kwh += energy
    return records


def _days(fleet: EvFleet, car: _Car, rng: random.Random) -> Iterator[tuple[list[Record], float]]:
    """The car's days, one at a time: each day's records (as emitted) and true capacity."""
    faults = _Faults(random.Random(f"{fleet.seed}:{car.vin}:faults"))
    for day in range(fleet.days):
        records: list[Record] = []
        day_ms = fleet.start_ms + day * DAY_MS
        ambient = _ambient(car, rng, day, fleet.start_ms)
        weekday = day % 7 < 5
        km = 0.0 if rng.random() < 0.08 else car.km_day * (1.0 if weekday else 0.7)
        km *= math.exp(rng.gauss(0, 0.35))
        depart = day_ms + (7.5 + rng.uniform(0, 3)) * 3.6e6
        capacity = car.capacity(day)
        consumption = car.consumption * (1.25 if ambient < 5 else 1.0)
        records.append((depart, _driving(car, ambient)))
        # The day's driving, with a DC stop whenever the SoC would fall under 15.
        remaining = km
        t = depart
        while remaining > 0:
            reach = max((car.soc - 15.0) / 100.0 * capacity / consumption, 0.0)
            leg = min(remaining, reach)
            car.soc -= leg * consumption / capacity * 100.0
            car.odometer += leg
            car.throughput_kwh += leg * consumption
            remaining -= leg
            t += leg / 50.0 * 3.6e6
            if remaining > 0:
                records.append((t, _driving(car, ambient)))
                records += _charge(car, rng, day, t + 60_000, 80.0, True, ambient)
                t = records[-1][0] + 300_000
        arrive = t + 600_000
        records.append((arrive, _driving(car, ambient)))
        if car.home_kw and (car.soc < car.threshold or rng.random() < 0.15):
            target = 100.0 if rng.random() < 0.08 else car.target
            if target > car.soc + 1:
                start = max(arrive + 1.8e6, day_ms + rng.uniform(18, 22) * 3.6e6)
                parked = ambient - 2.0 if car.garage is None else max(car.garage, ambient)
                session = _charge(car, rng, day, start, target, False, parked)
                records += session
                records.append((session[-1][0] + 300_000, _driving(car, ambient, charging=0.0)))
        elif not car.home_kw and car.soc < 35:
            session = _charge(car, rng, day, arrive + 1.2e6, 80.0, True, ambient)
            records += session
            records.append((session[-1][0] + 300_000, _driving(car, ambient)))
        yield (faults.apply(records) if fleet.faults else records), car.capacity(day)


def _vehicle(fleet: EvFleet, index: int) -> tuple[_Car, Iterator[tuple[list[Record], float]]]:
    rng = random.Random(f"{fleet.seed}:{index}")
    car = _car(rng, index)
    return car, _days(fleet, car, rng)


def _truth(fleet: EvFleet, car: _Car, daily: list[float]) -> VinTruth:
    reference = car.nominal if car.known else daily[min(14, len(daily) - 1)]
    truth = VinTruth(car.vin, reference)
    for day in range(3, fleet.days, 7):  # each week's Thursday
        week = fleet.start_ms + (day - 3) * DAY_MS
        truth.weeks[week] = 100.0 * daily[day] / reference
    _true_end_of_life(car, truth, fleet)
    return truth


def _driving(car: _Car, ambient: float, charging: float = 0.0) -> dict[str, Any]:
    return {
        "soc": round(car.soc, 2),
        "charging": charging,
        "pack_temp": round(ambient + 2.0, 1),
        "odometer": round(car.odometer, 1),
    }


def _true_end_of_life(car: _Car, truth: VinTruth, fleet: EvFleet) -> None:
    """When the true SoH reaches 80, cycling on at the VIN's mean daily throughput."""
    per_day = car.throughput_kwh / fleet.days
    km_day = car.km_day * (5 + 0.7 * 2) / 7 * math.exp(0.35**2 / 2) * 0.92
    last = fleet.days - 1
    base = car.throughput_kwh
    for extra in range(0, 40 * 365):
        car.throughput_kwh = base + per_day * extra
        if 100.0 * car.capacity(last + extra) / truth.reference_kwh <= 80.0:
            truth.eol_ms = fleet.start_ms + (last + extra) * DAY_MS
            truth.eol_odometer_km = car.odometer + km_day * extra
            break
    car.throughput_kwh = base


class _Faults:
    """Data gaps (a stretch of records lost), duplicates, and records emitted late (up to
    5 minutes), applied day by day; a gap may run on into the next day."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.skip_until = -math.inf

    def apply(self, records: list[Record]) -> list[Record]:
        rng = self.rng
        kept: list[Record] = []
        for ts, signals in records:
            if ts < self.skip_until:
                continue
            if rng.random() < 0.002:
                self.skip_until = ts + rng.uniform(0.5, 3.0) * 3.6e6
                continue
            kept.append((ts, signals))
            if rng.random() < 0.005:
                kept.append((ts, signals))
        order = [
            (ts + (rng.uniform(10, 300) * 1000.0 if rng.random() < 0.01 else 0.0), i)
            for i, (ts, _) in enumerate(kept)
        ]
        order.sort()
        return [kept[i] for _, i in order]


def simulate(fleet: EvFleet) -> tuple[dict[str, list[Telemetry]], dict[str, VinTruth]]:
    """Each VIN's telemetry in emission order, and its truth (all in memory: for scoring;
    `messages` streams without holding the fleet)."""
    streams: dict[str, list[Telemetry]] = {}
    truths: dict[str, VinTruth] = {}
    for index in range(fleet.vehicles):
        car, days = _vehicle(fleet, index)
        daily: list[float] = []
        stream = streams[car.vin] = []
        for records, capacity in days:
            daily.append(capacity)
            stream += (_telemetry(car.vin, ts, signals, fleet.protocol) for ts, signals in records)
        truths[car.vin] = _truth(fleet, car, daily)
    return streams, truths


def _stream(fleet: EvFleet, index: int) -> Iterator[Telemetry]:
    car, days = _vehicle(fleet, index)
    for records, _ in days:
        for ts, signals in records:
            yield _telemetry(car.vin, ts, signals, fleet.protocol)


def _telemetry(vin: str, ts: float, signals: dict[str, Any], protocol: Protocol) -> Telemetry:
    ts = float(round(ts))  # whole milliseconds, as on the wire
    if protocol == "tesla":
        return Telemetry(vin, ts, _tesla_signals(signals), None, {"source": "tesla_V"})
    generic = {k: v for k, v in signals.items() if k != "dc"}
    return Telemetry(vin, ts, generic, None, {"source": "simulator"})


def _tesla_signals(signals: dict[str, Any]) -> dict[str, float]:
    """The generic signals under Tesla's field names (as `decode_tesla` returns them)."""
    out: dict[str, float] = {
        "Soc": signals["soc"],
        "DetailedChargeState": signals["charging"],
        "ModuleTempMin": signals["pack_temp"],
        "ModuleTempMax": round(signals["pack_temp"] + 1.0, 1),
        "Odometer": round(signals["odometer"] / 1.609344, 2),
    }
    if "charge_energy_kwh" in signals:
        kind = "DC" if signals["dc"] else "AC"
        out[f"{kind}ChargingEnergyIn"] = signals["charge_energy_kwh"]
        out[f"{kind}ChargingPower"] = signals["charge_power_kw"]
    return out


def messages(fleet: EvFleet) -> Iterator[tuple[bytes, bytes]]:
    """The fleet's records as Kafka (key, value) pairs, all VINs merged by emission time:
    `telemetry` JSON, or Tesla protojson for `tesla_V`."""
    streams = (_stream(fleet, index) for index in range(fleet.vehicles))
    merged = heapq.merge(*(_emitted(stream) for stream in streams))
    for _, _, _, telemetry in merged:
        yield telemetry.asset_id.encode(), encode(telemetry, fleet.protocol)


def _emitted(stream: Iterator[Telemetry]) -> Iterator[tuple[float, str, int, Telemetry]]:
    """A VIN's records keyed by when they are sent: a late record goes with the newest
    record before it."""
    clock = -math.inf
    for index, telemetry in enumerate(stream):
        clock = max(clock, telemetry.ts_ms)
        yield clock, telemetry.asset_id, index, telemetry


def encode(telemetry: Telemetry, protocol: Protocol) -> bytes:
    """A record's bytes on the wire: BRIEF's telemetry JSON, or Tesla protojson."""
    if protocol == "generic":
        return telemetry.to_bytes()
    data = []
    for name, value in telemetry.signals.items():
        if name == "DetailedChargeState":
            state = "DetailedChargeStateCharging" if value else "DetailedChargeStateComplete"
            data.append({"key": name, "value": {"detailedChargeStateValue": state}})
        else:
            data.append({"key": name, "value": {"doubleValue": value}})
    record = {"vin": telemetry.asset_id, "createdAt": format_ts(telemetry.ts_ms), "data": data}
    return json.dumps(record, separators=(",", ":")).encode()
