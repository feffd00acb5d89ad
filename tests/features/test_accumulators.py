"""Streaming accumulators against numpy on the full window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamapp.features import accumulators as acc_ops

RTOL = 1e-9


def reference(x: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """Two-pass numpy definitions of every feature (population statistics)."""
    mean = x.mean()
    d = x - mean
    m2 = np.mean(d**2)
    rms = np.sqrt(np.mean(x**2))
    dt = t - t.mean()
    varying = m2 > 0
    return {
        "count": float(len(x)),
        "mean": mean,
        "std": np.sqrt(m2),
        "min": x.min(),
        "max": x.max(),
        "rms": rms,
        "skewness": np.mean(d**3) / m2**1.5 if varying else 0.0,
        "kurtosis": np.mean(d**4) / m2**2 if varying else 0.0,
        "crest_factor": np.abs(x).max() / rms if rms > 0 else 0.0,
        "peak_to_peak": x.max() - x.min(),
        "slope": np.sum(dt * d) / np.sum(dt**2) if np.sum(dt**2) > 0 else 0.0,
    }


def streamed(x: np.ndarray, t: np.ndarray) -> dict[str, float]:
    acc = acc_ops.empty(1)
    for value, moment in zip(x, t, strict=True):
        acc_ops.update(acc, np.array([value]), np.array([moment]))
    return {name: float(value[0]) for name, value in acc_ops.features(acc).items()}


def assert_matches(got: dict[str, float], want: dict[str, float], x: np.ndarray) -> None:
    scale = float(np.abs(x).max())
    spread = float(np.std(x))
    for name, expected in want.items():
        value = got[name]
        assert np.isfinite(value), name
        if name in ("skewness", "kurtosis"):
            atol = RTOL * 10  # dimensionless O(1) quantities: absolute tolerance
        elif name == "slope":
            atol = RTOL * (spread + scale * 1e-6)
        elif name in ("std",):
            atol = RTOL * scale * 1e-3
        else:
            atol = RTOL * scale * 1e-3
        assert value == pytest.approx(expected, rel=RTOL, abs=atol), (name, value, expected)


magnitudes = st.sampled_from([1e-50, 1e-12, 1e-3, 1.0, 1e3, 1e12, 1e50])


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Random, well-conditioned windows: spread at least 1e-3 of the level."""
    n = draw(st.integers(2, 60))
    scale = draw(magnitudes)
    level = draw(st.floats(-1000, 1000)) * scale
    spread = draw(st.floats(1e-3, 10)) * max(abs(level), scale)
    unit = draw(
        st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=n, max_size=n).filter(
            lambda u: max(u) - min(u) > 0.1
        )
    )
    x = level + spread * np.asarray(unit)
    steps = draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n))
    t = np.cumsum(steps)
    # A time axis that barely moves makes the slope ill-conditioned in any float algorithm.
    assume(t.std() > 1e-3 * max(1.0, abs(t.mean())))
    return x, t


@settings(max_examples=150, deadline=None)
@given(windows())
def test_random_windows_match_numpy(window: tuple[np.ndarray, np.ndarray]) -> None:
    x, t = window
    assert_matches(streamed(x, t), reference(x, t), x)


@settings(max_examples=40, deadline=None)
@given(st.floats(-1e50, 1e50), st.integers(1, 40))
def test_constant_signal_has_defined_values(value: float, n: int) -> None:
    x = np.full(n, value)
    got = streamed(x, np.arange(n, dtype=float))
    assert got["std"] == 0 and got["skewness"] == 0 and got["kurtosis"] == 0
    assert got["slope"] == 0 and got["peak_to_peak"] == 0
    assert got["mean"] == pytest.approx(value, rel=RTOL)
    assert got["crest_factor"] == (pytest.approx(1.0, rel=RTOL) if value else 0.0)
    assert all(np.isfinite(v) for v in got.values())


@settings(max_examples=40, deadline=None)
@given(st.floats(-1e50, 1e50), st.floats(0, 1e9))
def test_single_sample(value: float, moment: float) -> None:
    got = streamed(np.array([value]), np.array([moment]))
    assert got["count"] == 1 and got["mean"] == value and got["min"] == got["max"] == value
    assert got["std"] == 0 and got["slope"] == 0 and got["rms"] == pytest.approx(abs(value))


def test_overflowing_moments_are_not_finite_only_where_the_data_is_out_of_range() -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        got = streamed(np.array([1e100, -1e100, 3e100]), np.array([0.0, 1.0, 2.0]))
    assert got["mean"] == pytest.approx(1e100)
    assert not np.isfinite(got["kurtosis"])  # the extractor turns this into JSON null


@settings(max_examples=80, deadline=None)
@given(windows(), st.data())
def test_merge_is_associative_and_equals_streaming(window, data: st.DataObject) -> None:
    x, t = window
    n = len(x)
    cut1 = data.draw(st.integers(0, n))
    cut2 = data.draw(st.integers(cut1, n))

    def part(lo: int, hi: int) -> np.ndarray:
        acc = acc_ops.empty(1)
        for value, moment in zip(x[lo:hi], t[lo:hi], strict=True):
            acc_ops.update(acc, np.array([value]), np.array([moment]))
        return acc

    a, b, c = part(0, cut1), part(cut1, cut2), part(cut2, n)
    left = acc_ops.merge(acc_ops.merge(a, b), c)
    right = acc_ops.merge(a, acc_ops.merge(b, c))
    want = reference(x, t)
    for merged in (left, right):
        got = {k: float(v[0]) for k, v in acc_ops.features(merged).items()}
        assert_matches(got, want, x)


def test_shift_time_moves_the_origin_without_changing_the_slope() -> None:
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=20), np.sort(rng.uniform(0, 10, size=20))
    acc = acc_ops.empty(1)
    for value, moment in zip(x, t, strict=True):
        acc_ops.update(acc, np.array([value]), np.array([moment]))
    shifted = acc_ops.shift_time(acc, 100.0)
    assert shifted[0, acc_ops.TMEAN] == pytest.approx(t.mean() + 100.0)
    assert acc_ops.features(shifted)["slope"][0] == acc_ops.features(acc)["slope"][0]
