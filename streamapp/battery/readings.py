"""One telemetry record -> the battery reading it carries (pure).

Two vocabularies name the same quantities: Tesla fleet telemetry (as `ingest-tesla`
normalises it) and generic `telemetry` signals. A record may carry only some of them
(Tesla sends fields as they change); the tracker carries charge state, temperatures and
odometer forward, and a record is a charging point only if it has SoC and the session's
energy counter together.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import Telemetry

MILES_KM = 1.609344

#: Generic `telemetry` signal names (documented in the README's message formats).
SOC = ("soc", "Soc", "BatteryLevel")
CHARGING = ("charging", "DetailedChargeState", "ChargeState")
AC_ENERGY = ("ACChargingEnergyIn",)
DC_ENERGY = ("DCChargingEnergyIn",)
GENERIC_ENERGY = "charge_energy_kwh"
AC_POWER = ("ACChargingPower",)
DC_POWER = ("DCChargingPower",)
GENERIC_POWER = "charge_power_kw"
TEMP_MIN = ("pack_temp", "ModuleTempMin")
TEMP_MAX = ("pack_temp", "ModuleTempMax")
NOMINAL = "nominal_kwh"


@dataclass(frozen=True, slots=True)
class Reading:
    """What one record says about the battery; None where it says nothing."""

    ts_ms: float
    soc: float | None = None
    charging: bool | None = None
    energy_kwh: float | None = None
    power_kw: float | None = None
    dc: bool | None = None  # None: the record does not tell AC from DC
    temp_min_c: float | None = None
    temp_max_c: float | None = None
    odometer_km: float | None = None
    nominal_kwh: float | None = None

    @property
    def is_point(self) -> bool:
        """It can be a point of a session: SoC and the energy counter together."""
        return self.soc is not None and self.energy_kwh is not None


def _first(signals: dict[str, float], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = signals.get(name)
        if value is not None:
            return value
    return None


def read(telemetry: Telemetry) -> Reading | Invalid:
    """The battery reading of a record; Invalid (with the reason a dead letter carries)
    for a value no battery can have."""
    signals = telemetry.signals
    soc = _first(signals, SOC)
    if soc is not None and not 0.0 <= soc <= 100.0:
        return Invalid(f"soc {soc:g} outside 0-100")
    ac_energy = _first(signals, AC_ENERGY)
    dc_energy = _first(signals, DC_ENERGY)
    generic_energy = signals.get(GENERIC_ENERGY)
    for name, value in (
        ("ACChargingEnergyIn", ac_energy),
        ("DCChargingEnergyIn", dc_energy),
        (GENERIC_ENERGY, generic_energy),
    ):
        if value is not None and value < 0:
            return Invalid(f"{name} {value:g} is negative")
    ac_power = _first(signals, AC_POWER)
    dc_power = _first(signals, DC_POWER)
    dc: bool | None = None
    energy = generic_energy
    power = signals.get(GENERIC_POWER)
    if dc_energy is not None and (dc_energy > 0 or ac_energy is None):
        energy, power, dc = dc_energy, dc_power, True
    elif ac_energy is not None:
        energy, power, dc = ac_energy, ac_power, False
    elif dc_power is not None and dc_power > 0:
        power, dc = dc_power, True
    elif ac_power is not None and ac_power > 0:
        power, dc = ac_power, False
    charging = _first(signals, CHARGING)
    odometer = signals.get("odometer")
    if odometer is None and "Odometer" in signals:
        odometer = signals["Odometer"] * MILES_KM  # Tesla reports miles
    nominal = signals.get(NOMINAL)
    if nominal is not None and nominal <= 0:
        return Invalid(f"nominal_kwh {nominal:g} is not positive")
    return Reading(
        telemetry.ts_ms,
        soc,
        None if charging is None else charging > 0,
        energy,
        power,
        dc,
        _first(signals, TEMP_MIN),
        _first(signals, TEMP_MAX),
        odometer,
        nominal,
    )
