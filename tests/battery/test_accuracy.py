"""The battery method against a simulated fleet's truth: 200 EVs over 2 years of event
time (the evaluation fleet of docs/battery.md, never used to choose anything)."""

from __future__ import annotations

import pytest

from streamapp.battery.evaluate import score, track
from streamapp.battery.rules import BatteryRules
from streamapp.sim.ev import EvFleet

EVALUATION = EvFleet(vehicles=200, days=730, seed=2026)


@pytest.mark.slow
def test_weekly_soh_is_within_1_5_points_for_95_percent_of_vin_weeks() -> None:
    run, truths = track(EVALUATION, BatteryRules.load())
    figures = score(run, truths)
    print("battery accuracy:", figures)
    assert figures["vehicles"] == 200
    assert figures["vin_weeks_scored"] > 10_000
    assert figures["share_within"] >= 0.95, figures
    assert figures["soh_increases"] == 0
    assert figures["mae"] < 0.6
    # Measured, not targets of the issue: stated in docs/battery.md.
    assert figures["soh_interval_coverage"] > 0.85
    assert figures["eol_scored"] >= 50 and figures["eol_interval_coverage"] > 0.75
