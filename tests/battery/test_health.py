"""Weekly SoH: weeks, outliers, the monotone fit, the learned nominal, end of life (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from streamapp.battery import fade
from streamapp.battery.health import HealthState, advance, monotone_end, week_of
from streamapp.battery.rules import HealthRules
from streamapp.battery.sessions import ChargeSession

RULES = HealthRules()
DAY = 86_400_000.0


def test_weeks_start_on_monday_utc() -> None:
    ts = datetime(2026, 12, 3, 17, 0, tzinfo=UTC).timestamp() * 1000  # a Thursday
    assert datetime.fromtimestamp(week_of(ts) / 1000, UTC) == datetime(2026, 11, 30, tzinfo=UTC)
    monday = datetime(2026, 11, 30, tzinfo=UTC).timestamp() * 1000
    assert week_of(monday) == monday and week_of(monday - 1) == monday - 7 * DAY


def test_the_monotone_fit_never_rises_and_pools_what_does() -> None:
    history = [(i * 7 * DAY, value, 1.0, None) for i, value in enumerate([95, 94, 96, 93])]
    value, error = monotone_end(history, smoothing_weeks=1)
    assert value == pytest.approx(93.0)
    rising = [(i * 7 * DAY, 90.0 + i, 1.0, None) for i in range(4)]
    assert monotone_end(rising, smoothing_weeks=1)[0] == pytest.approx(91.5)
    assert error > 0


def session(end_ms: float, capacity: float, window: float = 50.0) -> ChargeSession:
    return ChargeSession(
        "V", end_ms - 3_600_000, end_ms, 30, 30 + window, capacity * window / 100, "ac",
        7.0, 20.0, 20.0, capacity, True, None, 5, 100.0,
    )  # fmt: skip


def test_an_unknown_vin_learns_its_nominal_from_its_first_weeks() -> None:
    from streamapp.battery.health import add

    state = HealthState()
    start = week_of(1_767_571_200_000.0)
    for day in range(60):
        add(state, session(start + day * DAY + 20 * 3_600_000, 80.0 - day * 0.01), RULES)
        if day < 27:
            assert advance("V", state, start + (day + 1) * DAY, RULES) == []
    weeks = advance("V", state, start + 61 * DAY, RULES)
    assert state.nominal_source == "learned"
    assert state.nominal_kwh == pytest.approx(79.87, abs=0.05)
    assert weeks[0].soh == pytest.approx(100.0, abs=0.3)
    assert [w.soh for w in weeks] == sorted((w.soh for w in weeks), reverse=True)
    assert weeks[-1].nominal_source == "learned"


def test_end_of_life_is_projected_where_the_fade_crosses_the_threshold() -> None:
    days = [7.0 * i for i in range(60)]
    km = [d * 100.0 for d in days]
    truth = [100.0 - 1.5 * math.sqrt(d / 365.25 * 365.25) / math.sqrt(365.25) * 1 - 4e-5 * k
             for d, k in zip(days, km, strict=True)]  # fmt: skip
    fits = fade.fit_profile(days, km, truth, [1.0] * len(days))
    assert fits
    crossing = fade.crossing(fits[0], 80.0, 365.25 * 30)
    assert crossing is not None
    value, _ = fits[0].at(crossing)
    assert value == pytest.approx(80.0, abs=0.01)
    assert fade.crossing(fits[0], 10.0, 365.0) is None


def test_one_low_first_session_cannot_set_the_ceiling() -> None:
    """The first weeks wait for `first_sessions` usable sessions and judge them together:
    a first session 6 points low is an outlier of the pooled ones, not the VIN's SoH."""
    from streamapp.battery.health import add

    state = HealthState(nominal_kwh=75.0, nominal_source="table")
    start = week_of(1_767_571_200_000.0)
    published = []
    for day in range(0, 70, 3):
        capacity = 67.5 if day == 0 else 72.0 + (0.3 if day % 2 else -0.3)
        add(state, session(start + day * DAY + 20 * 3_600_000, capacity), RULES)
        published += advance("V", state, start + (day + 1) * DAY, RULES)
    assert published and all(w.soh is not None for w in published)
    assert all(abs(w.soh - 96.0) <= 1.0 for w in published)
    assert [w.soh for w in published] == sorted((w.soh for w in published), reverse=True)
