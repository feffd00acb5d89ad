"""Charge sessions: the readings of one charge, and what they say about the pack (pure).

A session's readings are kept sorted by event time while it is open, so readings that
arrive a little out of order (within the tracker's reorder window) land in place; what
it measures is computed once, at close, from its first and last reading: energy added
is the difference of the session's energy counter, the SoC window the difference of
its SoC, so a session observed from its middle still measures the pack. The rules that
make a session unusable are checked in a fixed order and the first that fails is its
`reason` (docs/battery.md has each rule and why).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from streamapp.battery.rules import SessionRules
from streamapp.contracts.codec import format_ts

#: One reading of an open session: ts_ms, soc, energy_kwh, power_kw (nan: none),
#: dc (1, 0, or -1: unknown), pack temperature min and max (nan: none).
Point = tuple[float, float, float, float, int, float, float]
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class ChargeSession:
    """A closed session, as `charge-sessions` carries it."""

    vin: str
    start_ms: float
    end_ms: float
    soc_start: float
    soc_end: float
    energy_added_kwh: float
    kind: str
    mean_power_kw: float | None
    pack_temp_min: float | None
    pack_temp_max: float | None
    capacity_kwh: float | None
    usable: bool
    reason: str | None
    readings: int
    odometer_km: float | None

    @property
    def soc_window(self) -> float:
        return self.soc_end - self.soc_start

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "vin": self.vin,
            "start": format_ts(self.start_ms),
            "end": format_ts(self.end_ms),
            "soc_start": round(self.soc_start, 3),
            "soc_end": round(self.soc_end, 3),
            "energy_added_kwh": round(self.energy_added_kwh, 3),
            "kind": self.kind,
            "mean_power_kw": _round(self.mean_power_kw),
            "pack_temp_min": _round(self.pack_temp_min),
            "pack_temp_max": _round(self.pack_temp_max),
            "capacity_kwh": _round(self.capacity_kwh),
            "usable": self.usable,
            "reason": self.reason,
            "readings": self.readings,
            "odometer_km": _round(self.odometer_km, 1),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":")).encode()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def conflicts(points: list[Point], point: Point) -> bool:
    """A different reading at the instant of one of `points` (the same again is not)."""
    ts = point[0]
    for other in reversed(points):
        if other[0] == ts:
            return not _same(other, point)
        if other[0] < ts:
            return False
    return False


def insert(points: list[Point], point: Point) -> None:
    """Put `point` in its place among the sorted `points` (the same reading again: no-op)."""
    ts = point[0]
    if not points or ts > points[-1][0]:
        points.append(point)
        return
    index = len(points)
    while index > 0 and points[index - 1][0] > ts:
        index -= 1
    if index > 0 and points[index - 1][0] == ts:
        return
    points.insert(index, point)


def _same(a: Point, b: Point) -> bool:
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def close(
    vin: str,
    points: list[Point],
    rules: SessionRules,
    nominal_kwh: float | None,
    odometer_km: float | None,
    overflow: bool = False,
) -> ChargeSession:
    """The closed session of `points` (sorted, at least one) and whether it is usable."""
    first, last = points[0], points[-1]
    duration_h = (last[0] - first[0]) / 3_600_000.0
    energy = last[2] - first[2]
    window = last[1] - first[1]
    powers = [p[3] for p in points if p[3] == p[3]]
    temps_min = [p[5] for p in points if p[5] == p[5]]
    temps_max = [p[6] for p in points if p[6] == p[6]]
    mean_power = sum(powers) / len(powers) if powers else None
    if mean_power is None and duration_h > 0 and energy > 0:
        mean_power = energy / duration_h
    kinds = {p[4] for p in points} - {-1}
    dc = 1 in kinds if kinds else mean_power is not None and mean_power > rules.dc_min_kw
    capacity = energy / (window / 100.0) if window > 0 and energy > 0 else None
    temp_min = min(temps_min) if temps_min else None
    temp_max = max(temps_max) if temps_max else None
    reason = _unusable(points, rules, duration_h, energy, window, capacity, nominal_kwh)
    if reason is None and overflow:
        reason = f"more than {rules.max_points} readings"
    if reason is None and temp_min is not None and temp_min < rules.min_pack_temp_c:
        reason = f"cold pack ({temp_min:g} C < {rules.min_pack_temp_c:g})"
    if reason is None and temp_max is not None and temp_max > rules.max_pack_temp_c:
        reason = f"hot pack ({temp_max:g} C > {rules.max_pack_temp_c:g})"
    return ChargeSession(
        vin,
        first[0],
        last[0],
        first[1],
        last[1],
        energy,
        "dc" if dc else "ac",
        mean_power,
        temp_min,
        temp_max,
        capacity,
        reason is None,
        reason,
        len(points),
        odometer_km,
    )


def _unusable(
    points: list[Point],
    rules: SessionRules,
    duration_h: float,
    energy: float,
    window: float,
    capacity: float | None,
    nominal_kwh: float | None,
) -> str | None:
    """The first rule the session fails, or None."""
    reference = nominal_kwh or capacity  # kWh per 100 SoC points, to tell a jump
    if len(points) < 2:
        return "fewer than 2 readings"
    if duration_h > rules.max_session_h:
        return f"longer than {rules.max_session_h:g} h"
    for before, after in itertools.pairwise(points):
        if after[2] < before[2] - 1e-6:
            return "energy counter decreased"
        if after[1] < before[1] - rules.max_soc_drop:
            return "soc fell while charging"
        explained = 0.0 if reference is None else 100.0 * (after[2] - before[2]) / reference
        jump = after[1] - before[1] - explained
        if jump > rules.max_soc_jump:
            return f"soc jumped {jump:.3g} points more than its energy explains"
    if window < rules.min_soc_window:
        return f"soc window {window:g} < {rules.min_soc_window:g} points"
    if energy < rules.min_energy_kwh:
        return f"energy added {energy:g} < {rules.min_energy_kwh:g} kWh"
    if capacity is not None and nominal_kwh is not None:
        ratio = capacity / nominal_kwh
        if not rules.min_capacity_ratio <= ratio <= rules.max_capacity_ratio:
            return f"capacity {capacity:.1f} kWh implausible for nominal {nominal_kwh:g}"
    return None
