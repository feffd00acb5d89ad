"""The per-VIN tracker: sessions from records, and hostile input that moves no SoH (pure)."""

from __future__ import annotations

import pytest

from streamapp.battery.readings import read
from streamapp.battery.rules import BatteryRules
from streamapp.battery.tracker import VinState, apply
from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import Telemetry
from tests.battery.streams import DAY_MS, HOUR_MS, START_MS, daily, record, session

RULES = BatteryRules.load()


def run(records: list[Telemetry], state: VinState | None = None):
    """Sessions, weeks and (record, reason) refusals of a VIN's records, in order."""
    state = state or VinState()
    sessions, weeks, refused = [], [], []
    for telemetry in records:
        reading = read(telemetry)
        if isinstance(reading, Invalid):
            refused.append((telemetry, reading.reason))
            continue
        outcome = apply(telemetry.asset_id, state, reading, RULES)
        if outcome.refused:
            refused.append((telemetry, outcome.refused))
        sessions += outcome.sessions
        weeks += outcome.weeks
    return sessions, weeks, refused, state


def test_a_daily_charger_gets_its_sessions_and_a_week_each_week() -> None:
    sessions, weeks, refused, _ = run(daily(30, capacity_kwh=70.0))
    assert not refused
    assert len(sessions) == 30 and all(s.usable for s in sessions)
    assert all(abs(s.capacity_kwh - 70.0) < 1e-9 for s in sessions)
    assert [w.to_json_dict()["week"] for w in weeks] == [
        "2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26",
    ]  # fmt: skip
    # The fit plus `ceiling_z` standard errors: wide at first, narrowing week by week.
    soh = [w.soh for w in weeks]
    assert soh == sorted(soh, reverse=True)
    assert all(0 < value - 100 * 70 / 75 <= RULES.health.ceiling_z + 1e-9 for value in soh)
    assert soh[-1] - 100 * 70 / 75 < 0.1
    assert weeks[0].nominal_source == "table" and weeks[0].sessions == 7


def test_the_state_round_trips_through_its_bytes_mid_session() -> None:
    records = daily(10)
    cut = len(records) // 2 + 3
    first = run(records[:cut])
    again = VinState.from_bytes(first[3].to_bytes())
    rest = run(records[cut:], again)
    whole = run(records)
    assert [s.to_bytes() for s in first[0] + rest[0]] == [s.to_bytes() for s in whole[0]]
    assert [w.to_bytes() for w in first[1] + rest[1]] == [w.to_bytes() for w in whole[1]]


def hostile(clean: list[Telemetry]) -> tuple[list[Telemetry], dict[str, str]]:
    """`clean` with each hostile input of the issue added in its own quiet hours (days 2
    to 20 at noon, and days 30 to 33 left silent by `clean` for the long session), and
    the reason each is expected to give (a refusal, or its session's `reason`)."""
    noon = [START_MS + day * DAY_MS + 11 * HOUR_MS for day in range(40)]
    extra: list[tuple[float, Telemetry]] = []
    expected: dict[str, str] = {}

    def add(key: str, reason: str, records: list[Telemetry]) -> None:
        expected[key] = reason
        extra.extend((r.ts_ms, r) for r in records)

    add("soc>100", "soc 130 outside 0-100", [record(noon[2], soc=130.0, charging=0.0)])
    add("negative", "charge_energy_kwh -3 is negative",
        [record(noon[3], soc=50.0, charging=1.0, charge_energy_kwh=-3.0)])  # fmt: skip
    falling = session(noon[4], 70.0, readings=4)
    falling[2] = record(falling[2].ts_ms, soc=falling[2].signals["soc"], charging=1.0,
                        charge_energy_kwh=1.0)  # fmt: skip
    add("counter", "energy counter decreased", falling)
    long_session = session(noon[30], 70.0, soc_from=20, soc_to=80, readings=26)
    long_session = [
        record(r.ts_ms + i * HOUR_MS, **r.signals) for i, r in enumerate(long_session)
    ]  # readings two hours apart: 50 hours of charging
    add("long", "longer than 48 h", long_session)
    jump = session(noon[5], 70.0, readings=4)
    jump[2] = record(jump[2].ts_ms, soc=jump[2].signals["soc"] + 25, charging=1.0,
                     charge_energy_kwh=jump[2].signals["charge_energy_kwh"])  # fmt: skip
    add("jump", "soc jumped", jump)
    tiny = session(noon[6], 70.0, soc_from=60, soc_to=70, readings=4)
    add("tiny", "soc window 10 < 20 points", tiny)
    cold = session(noon[7], 70.0 * 0.9, readings=4, pack_temp=2.0)
    add("cold", "cold pack", cold)
    add("nominal", "nominal capacity changed from 75 to 60 kWh",
        [record(noon[8], soc=60.0, charging=0.0, nominal_kwh=60.0)])  # fmt: skip
    expected["late"] = "late:"
    late = record(noon[9] - 2 * DAY_MS, soc=40.0, charging=0.0)  # sent two days late
    # The same reading twice changes nothing; a different one at the same instant is refused.
    duplicated = session(noon[10], 70.0, readings=4)
    add("conflict", "conflicting reading at the same instant",
        [*duplicated, duplicated[1], record(duplicated[2].ts_ms, soc=1.0, charging=1.0,
                                            charge_energy_kwh=5.0)])  # fmt: skip
    merged = [(r.ts_ms, r) for r in clean] + extra
    merged.sort(key=lambda pair: pair[0])
    # Out of order within the reorder window: the session's readings swapped in pairs.
    swapped = session(noon[12], 70.0, spacing_ms=HOUR_MS / 12)
    order = [swapped[1], swapped[0], swapped[3], swapped[2], *swapped[4:]]
    position = next(i for i, (ts, _) in enumerate(merged) if ts > noon[12])
    merged[position:position] = [(r.ts_ms, r) for r in order]
    position = next(i for i, (ts, _) in enumerate(merged) if ts > noon[9])
    merged.insert(position, (late.ts_ms, late))
    return [r for _, r in merged], expected


def test_hostile_input_moves_no_soh_and_each_is_refused_or_flagged() -> None:
    clean = daily(50, capacity_kwh=70.0, skip=range(29, 34))
    _, clean_weeks, clean_refused, _ = run(clean)
    assert not clean_refused
    records, expected = hostile(clean)
    sessions, weeks, refused, _ = run(records)
    assert [w.week_ms for w in weeks] == [w.week_ms for w in clean_weeks]
    for week, clean_week in zip(weeks, clean_weeks, strict=True):
        assert week.soh == pytest.approx(clean_week.soh, abs=1e-9)
        assert week.soh_raw == pytest.approx(clean_week.soh_raw, abs=1e-9)
    reasons = [reason for _, reason in refused] + [s.reason for s in sessions if s.reason]
    for key, reason in expected.items():
        assert any(r.startswith(reason) for r in reasons), (key, reason, reasons)
    usable = [s for s in sessions if s.usable]
    assert len(usable) == len(clean) // 8 + 2  # the clean ones, the swapped, the duplicated
    assert all(abs(s.capacity_kwh - 70.0) < 1e-6 for s in usable)
