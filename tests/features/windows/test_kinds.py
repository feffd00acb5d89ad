"""The window kinds behind one interface: shapes, validation and lateness (no broker)."""

from __future__ import annotations

import math
import re

import pytest

from streamapp.contracts.telemetry import Telemetry
from streamapp.features.windows import (
    LATE,
    NO_CYCLE,
    AssetState,
    CycleWindows,
    HoppingWindows,
    TumblingWindows,
    build_windows,
)

T0 = 1_795_320_000_000.0


def test_each_kind_is_its_own_class() -> None:
    assert isinstance(build_windows("tumbling", 10, None, 5), TumblingWindows)
    hopping = build_windows("hopping", 10, 4, 0)
    assert isinstance(hopping, HoppingWindows)
    assert (hopping.size_ms, hopping.step_ms) == (10_000, 4_000)
    assert isinstance(build_windows("cycle", 1, None, 2), CycleWindows)
    # A tumbling window's step is its size, whatever step is given.
    assert build_windows("tumbling", 10, 3, 0).step_ms == 10_000


@pytest.mark.parametrize(
    ("kind", "idle_s", "message"),
    [
        ("tumbling", 14, "size + grace (15 s)"),
        ("hopping", 14, "size + grace (15 s)"),
        ("cycle", 4, "grace (5 s)"),
    ],
)
def test_an_idle_timeout_shorter_than_a_window_is_refused(
    kind: str, idle_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_windows(kind, 10, 5, 5, idle_s)  # type: ignore[arg-type]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        build_windows("tumbling", 0.0001, None, 0)
    with pytest.raises(ValueError, match="step <= size"):
        build_windows("hopping", 10, 20, 0)
    with pytest.raises(ValueError, match="unknown window kind"):
        build_windows("sliding", 10, None, 0)  # type: ignore[arg-type]


def test_time_windows_pick_the_pane_or_say_late() -> None:
    windows = build_windows("tumbling", 10, None, 2)
    state = AssetState(watermark=T0 + 11_000)
    assert windows.pane_key(Telemetry("A", T0 + 10_500, {}), state) == T0 + 10_000
    assert windows.pane_key(Telemetry("A", T0 + 9_000, {}), state) == T0  # grace: 12 s
    state.watermark = T0 + 12_000
    assert windows.pane_key(Telemetry("A", T0 + 9_000, {}), state) == LATE


def test_cycle_windows_need_a_cycle_and_refuse_closed_ones() -> None:
    windows = build_windows("cycle", 1, None, 0.5, idle_s=10)
    state = AssetState(closed_cycle=3)
    assert windows.pane_key(Telemetry("A", T0, {}, None), state) == NO_CYCLE
    assert windows.pane_key(Telemetry("A", T0, {}, 3), state) == LATE
    assert windows.pane_key(Telemetry("A", T0, {}, 4), state) == 4
    assert windows.horizon_reason(Telemetry("A", T0, {}, None)) == NO_CYCLE
    assert windows.beyond_horizon(T0, T0 + 10_000)
    assert not windows.beyond_horizon(T0 + 1, T0 + 10_000)


def test_expiry_is_the_watermark_plus_the_idle_timeout() -> None:
    assert build_windows("tumbling", 1, None, 0, 30).expires_at(T0) == T0 + 30_000
    assert build_windows("cycle", 1, None, 0).expires_at(T0) == math.inf
