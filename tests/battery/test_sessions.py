"""Charge sessions: what a session measures and each rule that makes it unusable (pure)."""

from __future__ import annotations

import pytest

from streamapp.battery.rules import SessionRules
from streamapp.battery.sessions import NAN, Point, close, conflicts, insert

RULES = SessionRules()
HOUR = 3_600_000.0


def point(hour: float, soc: float, energy: float, temp: float = 20.0, dc: int = 0) -> Point:
    return (hour * HOUR, soc, energy, 7.0, dc, temp, temp)


def test_a_session_measures_the_pack_from_its_first_and_last_reading() -> None:
    points = [point(0, 30, 1.0), point(1, 50, 15.0), point(2, 70, 29.0)]
    session = close("V", points, RULES, 75.0, 1234.5)
    assert session.usable and session.reason is None
    assert session.energy_added_kwh == pytest.approx(28.0)
    assert session.capacity_kwh == pytest.approx(28.0 / 0.40)
    assert (session.soc_start, session.soc_end, session.kind) == (30, 70, "ac")
    assert session.to_json_dict()["odometer_km"] == 1234.5


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        ([point(0, 30, 0)], "fewer than 2 readings"),
        ([point(0, 30, 0), point(49, 80, 35)], "longer than 48 h"),
        ([point(0, 30, 0), point(1, 50, 14), point(2, 80, 12)], "energy counter decreased"),
        ([point(0, 30, 0), point(1, 60, 20), point(2, 55, 22)], "soc fell while charging"),
        ([point(0, 30, 0), point(1, 45, 11), point(2, 80, 22)], "soc jumped 20.3 points"),
        ([point(0, 30, 0), point(1, 40, 7)], "soc window 10 < 20 points"),
        ([point(0, 30, 0), point(1, 40, 1), point(2, 50, 2), point(3, 60, 3)], "capacity 10.0 kWh"),
        ([point(0, 30, 0), point(1, 50, 1)], "energy added 1 < 2 kWh"),
        ([point(0, 30, 0), point(1, 40, 6), point(2, 50, 40)], "capacity 200.0 kWh implausible"),
        ([point(0, 30, 0, 4.0), point(1, 40, 7, 5.0), point(2, 50, 14, 6.0)], "cold pack"),
        ([point(0, 30, 0, 40.0), point(1, 40, 7, 50.0), point(2, 50, 14, 40.0)], "hot pack"),
    ],
)
def test_each_rule_makes_a_session_unusable_with_its_reason(points, reason: str) -> None:
    nominal = None if reason.startswith("energy added") else 75.0
    session = close("V", points, RULES, nominal, None)
    assert not session.usable
    assert session.reason is not None and session.reason.startswith(reason)


def test_too_many_readings_make_a_session_unusable() -> None:
    points = [point(0, 30, 0), point(1, 50, 14), point(2, 70, 28)]
    assert close("V", points, RULES, 75.0, None, overflow=True).reason == "more than 2000 readings"


def test_dc_is_told_by_its_field_or_by_the_mean_power() -> None:
    fast = [(0.0, 20, 0, 120.0, -1, NAN, NAN), (HOUR / 2, 70, 37, 110.0, -1, NAN, NAN)]
    assert close("V", fast, RULES, 75.0, None).kind == "dc"
    tagged = [point(0, 20, 0, dc=1), point(1, 70, 37, dc=1)]
    assert close("V", tagged, RULES, 75.0, None).kind == "dc"
    no_temps = close("V", fast, RULES, 75.0, None)
    assert no_temps.pack_temp_min is None and no_temps.usable


def test_readings_land_in_order_and_a_conflicting_one_is_told() -> None:
    points: list[Point] = []
    for hour, soc in ((0, 30), (2, 50), (1, 40)):
        insert(points, point(hour, soc, soc / 2))
    assert [p[0] / HOUR for p in points] == [0, 1, 2]
    assert not conflicts(points, point(1, 40, 20))  # the same reading again
    insert(points, point(1, 40, 20))
    assert len(points) == 3
    assert conflicts(points, point(1, 41, 20))
    lone = close("V", [(0, 30, 0, NAN, -1, NAN, NAN)], RULES, None, None)
    assert lone.pack_temp_min is None and lone.capacity_kwh is None
