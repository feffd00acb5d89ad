"""One VIN's battery state and what each of its records does to it (pure).

The state is the VIN's open session, the values it carries forward (charge state, pack
temperatures, odometer: Tesla sends fields as they change), the end of its last closed
session, its health and the input offsets it has applied (the exactly-once guard of
the agent). `apply` is deterministic: the same records in the same order give the same
sessions and weeks, byte for byte, which is what makes a replay after a crash safe.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from streamapp.battery import health
from streamapp.battery.health import HealthState, WeekHealth
from streamapp.battery.readings import Reading
from streamapp.battery.rules import BatteryRules
from streamapp.battery.sessions import NAN, ChargeSession, Point, close, conflicts, insert

_NOMINAL_TOLERANCE = 0.005


@dataclass(slots=True)
class VinState:
    """Everything the tracker keeps of one VIN."""

    offsets: dict[int, int] = field(default_factory=dict)  # source -> last applied offset
    newest_ms: float = -math.inf
    charging: bool = False
    temp_min_c: float | None = None
    temp_max_c: float | None = None
    odometer_km: float | None = None
    dc: bool | None = None
    points: list[Point] = field(default_factory=list)
    overflow: bool = False
    last_end_ms: float = -math.inf
    reported_nominal_kwh: float | None = None
    health: HealthState = field(default_factory=HealthState)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "offsets": [[source, offset] for source, offset in self.offsets.items()],
                "newest_ms": _finite(self.newest_ms),
                "charging": self.charging,
                "temp": [self.temp_min_c, self.temp_max_c],
                "odometer_km": self.odometer_km,
                "dc": self.dc,
                "points": [[_finite(x) for x in point] for point in self.points],
                "overflow": self.overflow,
                "last_end_ms": _finite(self.last_end_ms),
                "reported_nominal_kwh": self.reported_nominal_kwh,
                "health": self.health.to_dict(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> VinState:
        raw = json.loads(data)
        return cls(
            {int(source): int(offset) for source, offset in raw["offsets"]},
            _inf(raw["newest_ms"]),
            raw["charging"],
            raw["temp"][0],
            raw["temp"][1],
            raw["odometer_km"],
            raw["dc"],
            [tuple(NAN if x is None else x for x in point) for point in raw["points"]],  # type: ignore[misc]
            raw["overflow"],
            _inf(raw["last_end_ms"]),
            raw["reported_nominal_kwh"],
            HealthState.from_dict(raw["health"]),
        )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _inf(value: float | None) -> float:
    return -math.inf if value is None else float(value)


@dataclass(slots=True)
class Outcome:
    """What one record did: sessions closed, weeks published, or why it was refused."""

    sessions: list[ChargeSession] = field(default_factory=list)
    weeks: list[WeekHealth] = field(default_factory=list)
    refused: str | None = None


def apply(vin: str, state: VinState, reading: Reading, rules: BatteryRules) -> Outcome:
    """Apply one reading to its VIN's state (module docstring); a refused reading
    changes nothing."""
    outcome = Outcome()
    session_rules = rules.sessions
    ts = reading.ts_ms
    if ts < state.newest_ms - session_rules.reorder_s * 1000.0:
        outcome.refused = (
            f"late: {(state.newest_ms - ts) / 1000.0:g} s before the VIN's newest record "
            f"(reorder window {session_rules.reorder_s:g} s)"
        )
        return outcome
    refused = _check_nominal(vin, state, reading, rules)
    if refused is not None:
        outcome.refused = refused
        return outcome
    newest = ts >= state.newest_ms
    charging = state.charging if reading.charging is None or not newest else reading.charging
    points = state.points
    closes = bool(points) and (
        ts > points[-1][0] + session_rules.max_gap_s * 1000.0
        or (not charging and ts > points[-1][0])
    )
    point = _point(state, reading) if charging and reading.is_point else None
    if point is not None:
        if (closes or not points) and ts < state.newest_ms:
            outcome.refused = "late: a reading of a charge session that has closed"
            return outcome
        if not closes and conflicts(points, point):
            outcome.refused = "conflicting reading at the same instant"
            return outcome
    if closes:
        outcome.sessions.append(_close(vin, state, rules))
    if point is not None:
        if len(state.points) >= session_rules.max_points:
            state.overflow = True
        else:
            insert(state.points, point)
    if newest:
        _carry(state, reading)
        state.newest_ms = ts
    for session in outcome.sessions:
        health.add(state.health, session, rules.health)
    outcome.weeks = health.advance(vin, state.health, state.newest_ms, rules.health)
    return outcome


def _check_nominal(vin: str, state: VinState, reading: Reading, rules: BatteryRules) -> str | None:
    """Set the VIN's nominal capacity from the table or a reported one; refuse a
    record that reports another."""
    reported = reading.nominal_kwh
    known = state.health.nominal_kwh
    if known is None:
        table = rules.nominal_kwh(vin)
        if table is not None:
            state.health.nominal_kwh, state.health.nominal_source = table, "table"
            known = table
    if reported is None:
        return None
    reference = state.reported_nominal_kwh or (
        known if state.health.nominal_source == "table" else None
    )
    if reference is not None and abs(reported - reference) > _NOMINAL_TOLERANCE * reference:
        return f"nominal capacity changed from {reference:g} to {reported:g} kWh"
    if state.reported_nominal_kwh is None:
        state.reported_nominal_kwh = reported
        if state.health.nominal_source != "table":
            state.health.nominal_kwh, state.health.nominal_source = reported, "reported"
    return None


def _point(state: VinState, reading: Reading) -> Point:
    """The reading as a session point, with the carried values it does not have."""
    temp_min = reading.temp_min_c if reading.temp_min_c is not None else state.temp_min_c
    temp_max = reading.temp_max_c if reading.temp_max_c is not None else state.temp_max_c
    dc = reading.dc if reading.dc is not None else state.dc
    assert reading.soc is not None and reading.energy_kwh is not None
    return (
        reading.ts_ms,
        reading.soc,
        reading.energy_kwh,
        NAN if reading.power_kw is None else reading.power_kw,
        -1 if dc is None else int(dc),
        NAN if temp_min is None else temp_min,
        NAN if temp_max is None else temp_max,
    )


def _carry(state: VinState, reading: Reading) -> None:
    if reading.charging is not None:
        state.charging = reading.charging
    if reading.temp_min_c is not None:
        state.temp_min_c = reading.temp_min_c
    if reading.temp_max_c is not None:
        state.temp_max_c = reading.temp_max_c
    if reading.odometer_km is not None:
        state.odometer_km = reading.odometer_km
    if reading.dc is not None:
        state.dc = reading.dc


def _close(vin: str, state: VinState, rules: BatteryRules) -> ChargeSession:
    session = close(
        vin,
        state.points,
        rules.sessions,
        state.health.nominal_kwh,
        state.odometer_km,
        state.overflow,
    )
    state.points = []
    state.overflow = False
    state.last_end_ms = max(state.last_end_ms, session.end_ms)
    return session
