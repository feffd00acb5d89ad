"""The battery method against a simulated fleet's truth (the figures of docs/battery.md).

Every VIN's records go through the same tracker the agent runs, in the order the fleet
emits them; the published weeks are compared with the simulator's true SoH, and the
last week's end-of-life projection with the true end of life.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamapp.battery.health import WeekHealth
from streamapp.battery.readings import read
from streamapp.battery.rules import BatteryRules
from streamapp.battery.sessions import ChargeSession
from streamapp.battery.tracker import VinState, apply
from streamapp.contracts.codec import Invalid, parse_ts
from streamapp.sim.ev import EvFleet, VinTruth, simulate


@dataclass(slots=True)
class Run:
    """What the tracker published for a fleet, per VIN, and what it refused."""

    sessions: dict[str, list[ChargeSession]]
    weeks: dict[str, list[WeekHealth]]
    refused: dict[str, int]


def track(
    fleet: EvFleet, rules: BatteryRules, progress: Callable[[int], None] | None = None
) -> tuple[Run, dict[str, VinTruth]]:
    streams, truths = simulate(fleet)
    run = Run({}, {}, {})
    for done, (vin, records) in enumerate(streams.items(), 1):
        state = VinState()
        sessions: list[ChargeSession] = []
        weeks: list[WeekHealth] = []
        for telemetry in records:
            reading = read(telemetry)
            if isinstance(reading, Invalid):
                run.refused[reading.reason] = run.refused.get(reading.reason, 0) + 1
                continue
            outcome = apply(vin, state, reading, rules)
            if outcome.refused is not None:
                key = outcome.refused.split(":")[0]
                run.refused[key] = run.refused.get(key, 0) + 1
            sessions += outcome.sessions
            weeks += outcome.weeks
        run.sessions[vin] = sessions
        run.weeks[vin] = weeks
        if progress is not None:
            progress(done)
    return run, truths


def score(run: Run, truths: dict[str, VinTruth], within: float = 1.5) -> dict[str, Any]:
    """Accuracy of the weekly SoH (VIN-weeks with a usable session), its monotonicity,
    the SoH interval's coverage, and the end-of-life projection's."""
    errors: list[float] = []
    covered = 0
    increases = 0
    eol_errors: list[float] = []
    eol_covered = eol_scored = eol_beyond = 0
    for vin, weeks in run.weeks.items():
        truth = truths[vin]
        previous = None
        for week in weeks:
            if week.soh is not None and previous is not None and week.soh > previous + 1e-9:
                increases += 1
            previous = week.soh if week.soh is not None else previous
            true = truth.weeks.get(week.week_ms)
            if week.sessions == 0 or week.soh is None or true is None:
                continue
            errors.append(week.soh - true)
            assert week.soh_lower is not None and week.soh_upper is not None
            covered += week.soh_lower <= true <= week.soh_upper
        last = weeks[-1].end_of_life if weeks else None
        if last is None:
            continue
        if truth.eol_ms is None or last["date"] is None:
            eol_beyond += 1
            continue
        eol_scored += 1
        predicted = parse_ts(last["date"] + "T00:00:00Z")
        assert isinstance(predicted, float)
        eol_errors.append(abs(predicted - truth.eol_ms) / 86_400_000.0 / 365.25)
        lower = parse_ts(last["date_lower"] + "T00:00:00Z") if last["date_lower"] else 0.0
        upper = parse_ts(last["date_upper"] + "T00:00:00Z") if last["date_upper"] else float("inf")
        assert isinstance(lower, float) and isinstance(upper, float)
        eol_covered += lower <= truth.eol_ms <= upper
    sessions = [s for vin_sessions in run.sessions.values() for s in vin_sessions]
    absolute = [abs(e) for e in errors]
    return {
        "vehicles": len(run.weeks),
        "vin_weeks_scored": len(errors),
        "within": within,
        "share_within": sum(a <= within for a in absolute) / len(errors) if errors else None,
        "mae": statistics.fmean(absolute) if errors else None,
        "bias": statistics.fmean(errors) if errors else None,
        "p95_abs_error": sorted(absolute)[int(0.95 * (len(absolute) - 1))] if errors else None,
        "soh_increases": increases,
        "soh_interval_coverage": covered / len(errors) if errors else None,
        "sessions": len(sessions),
        "usable_share": sum(s.usable for s in sessions) / len(sessions) if sessions else None,
        "eol_scored": eol_scored,
        "eol_beyond_horizon": eol_beyond,
        "eol_interval_coverage": eol_covered / eol_scored if eol_scored else None,
        "eol_median_error_years": statistics.median(eol_errors) if eol_errors else None,
        "refused": dict(sorted(run.refused.items())),
    }
