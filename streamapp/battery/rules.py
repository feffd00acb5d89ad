"""The battery rules and the vehicle table, as data (`battery.yaml`, or BATTERY_CONFIG).

Each rule is a field with its default here and in the packaged file; a file of one's
own overrides only the keys it names, so a fleet can change one threshold and keep the
rest. Unknown keys are refused: a typo must not silently keep a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

PACKAGED = Path(__file__).with_name("battery.yaml")


@dataclass(frozen=True, slots=True)
class SessionRules:
    """When a charge session opens and closes, and when it is usable (battery.yaml)."""

    max_gap_s: float = 21600.0
    reorder_s: float = 600.0
    max_session_h: float = 48.0
    min_soc_window: float = 20.0
    min_energy_kwh: float = 2.0
    max_soc_drop: float = 1.0
    max_soc_jump: float = 10.0
    min_pack_temp_c: float = 10.0
    max_pack_temp_c: float = 45.0
    dc_min_kw: float = 25.0
    max_points: int = 2000
    min_capacity_ratio: float = 0.5
    max_capacity_ratio: float = 1.2


@dataclass(frozen=True, slots=True)
class HealthRules:
    """How weekly State of Health and end of life are estimated (battery.yaml)."""

    nominal_weeks: int = 4
    week_grace_h: float = 24.0
    first_sessions: int = 3
    first_hold_weeks: int = 8
    dc_weight: float = 0.3
    outlier_mad: float = 3.0
    outlier_points: float = 5.0
    smoothing_weeks: int = 8
    ceiling_z: float = 0.5
    interval_z: float = 1.645
    model_error: float = 0.6
    eol_min_weeks: int = 12
    eol_horizon_years: float = 30.0
    eol_soh: float = 80.0


@dataclass(frozen=True, slots=True)
class BatteryRules:
    """The vehicle table (VIN prefix -> nominal kWh) and the rules."""

    vehicles: dict[str, float] = field(default_factory=dict)
    sessions: SessionRules = SessionRules()
    health: HealthRules = HealthRules()
    version: int = 0

    def nominal_kwh(self, vin: str) -> float | None:
        """The table's nominal capacity of `vin` (its longest matching prefix), or None."""
        best: tuple[int, float] | None = None
        for prefix, kwh in self.vehicles.items():
            if vin.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), kwh)
        return None if best is None else best[1]

    @classmethod
    def load(cls, path: Path | None = None, eol_soh: float | None = None) -> BatteryRules:
        """The packaged rules, overridden by the keys of `path`; `eol_soh` (BATTERY_EOL_SOH)
        sets the end-of-life threshold."""
        rules = cls._parse(_read(PACKAGED), cls(), PACKAGED)
        if path is not None and Path(path).resolve() != PACKAGED.resolve():
            rules = cls._parse(_read(Path(path)), rules, Path(path))
        if eol_soh is not None:
            rules = replace(rules, health=replace(rules.health, eol_soh=float(eol_soh)))
        return rules

    @classmethod
    def _parse(cls, data: dict[str, Any], base: BatteryRules, source: Path) -> BatteryRules:
        unknown = set(data) - {"version", "vehicles", "sessions", "health"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}")
        vehicles = dict(base.vehicles)
        for prefix, kwh in (data.get("vehicles") or {}).items():
            if not isinstance(kwh, int | float) or isinstance(kwh, bool) or kwh <= 0:
                raise ValueError(f"{source}: vehicles.{prefix} must be a positive kWh number")
            vehicles[str(prefix)] = float(kwh)
        return cls(
            vehicles,
            _override(base.sessions, data.get("sessions"), source, "sessions"),
            _override(base.health, data.get("health"), source, "health"),
            int(data.get("version", base.version)),
        )


T = TypeVar("T", "SessionRules", "HealthRules")


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def _override(base: T, data: dict[str, Any] | None, source: Path, section: str) -> T:
    """`base` with the keys of `data` replaced, each converted to its field's type."""
    if not data:
        return base
    kinds = {f.name: f.type for f in fields(base)}
    unknown = set(data) - set(kinds)
    if unknown:
        raise ValueError(f"{source}: unknown {section} keys {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{source}: {section}.{name} must be a number")
        values[name] = int(value) if kinds[name] == "int" else float(value)
    return replace(base, **values)
