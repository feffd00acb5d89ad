"""Hand-built EV records for the battery tests: a VIN charging daily at a known capacity."""

from __future__ import annotations

from streamapp.contracts.telemetry import Telemetry
from streamapp.sim.ev import START_MS

VIN = "5YJ3E1EA000000001"  # in the shipped vehicle table: nominal 75 kWh
HOUR_MS = 3_600_000.0
DAY_MS = 24 * HOUR_MS


def record(ts_ms: float, vin: str = VIN, **signals: float) -> Telemetry:
    return Telemetry(vin, ts_ms, dict(signals), None, {"source": "test"})


def session(
    start_ms: float,
    capacity_kwh: float,
    soc_from: float = 30.0,
    soc_to: float = 80.0,
    readings: int = 6,
    vin: str = VIN,
    pack_temp: float = 22.0,
    spacing_ms: float = HOUR_MS,
) -> list[Telemetry]:
    """A home AC charge from `soc_from` to `soc_to` on a pack of `capacity_kwh`, then the
    stop record."""
    out = []
    for i in range(readings):
        soc = soc_from + (soc_to - soc_from) * i / (readings - 1)
        out.append(
            record(
                start_ms + i * spacing_ms,
                vin,
                soc=soc,
                charging=1.0,
                charge_energy_kwh=(soc - soc_from) / 100.0 * capacity_kwh,
                charge_power_kw=7.4,
                pack_temp=pack_temp,
            )
        )
    out.append(record(start_ms + readings * spacing_ms, vin, soc=soc_to, charging=0.0))
    return out


def daily(days: int, capacity_kwh: float = 70.0, vin: str = VIN, skip: range = range(0)) -> list:
    """A VIN that drives each morning and charges each evening (not on the `skip` days)."""
    out: list[Telemetry] = []
    for day in range(days):
        if day in skip:
            continue
        base = START_MS + day * DAY_MS
        out.append(record(base + 8 * HOUR_MS, vin, soc=80.0, charging=0.0, odometer=1000.0 + day))
        out += session(base + 17 * HOUR_MS, capacity_kwh, vin=vin)
    return out
