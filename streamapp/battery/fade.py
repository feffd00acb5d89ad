"""Capacity fade and the battery's end of life (pure).

The weekly SoH series of a VIN is fitted with a calendar term in the square root of
the pack's age and a cycle term linear in distance driven,
`soh = s0 - a * sqrt(age0 + days) - b * km` (a, b >= 0: a pack does not heal), by
weighted least squares over the weeks. The pack's age at its first week, `age0`, is
unknown: the fit is profiled over a grid of ages, and every age the weeks cannot rule
out (its residual within the 90% profile bound of the best) widens the end-of-life
interval. The end of life is where the best fit crosses the threshold, driving on at
the VIN's own mean daily distance; the interval spans where the fits' 90% bands cross
it. docs/battery.md has the model, its limits and its measured coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

Z90 = 1.645
CHI2_90_1DOF = 2.706
#: Pack ages (days) at the first week that the profile tries.
AGES_DAYS = (0.0, 90.0, 180.0, 365.0, 730.0, 1095.0, 1825.0, 2920.0)


@dataclass(frozen=True, slots=True)
class Fade:
    """A fitted fade: parameters, their covariance, and the usage it extrapolates."""

    s0: float
    a: float
    b: float
    covariance: np.ndarray  # of (s0, a, b); zero rows for a term held at 0
    age0_days: float
    sse: float
    last_days: float  # the last week fitted, days after the first
    last_km: float  # and its distance since the first week
    km_per_day: float  # the VIN's mean daily distance, for the weeks to come

    def at(self, days: float) -> tuple[float, float]:
        """The fitted SoH `days` after the first week (driving on at `km_per_day`), and
        its standard error."""
        km = self.last_km + self.km_per_day * (days - self.last_days)
        x = np.array([1.0, -math.sqrt(self.age0_days + max(days, 0.0)), -max(km, 0.0)])
        value = self.s0 * x[0] + self.a * x[1] + self.b * x[2]
        return float(value), float(math.sqrt(max(x @ self.covariance @ x, 0.0)))


def fit_profile(
    days: list[float], km: list[float], soh: list[float], weights: list[float]
) -> list[Fade]:
    """The fits (days and km since the first week, weekly SoH and weights) for every pack
    age the weeks cannot rule out, best first; empty if none is determined."""
    fits = [f for age in AGES_DAYS if (f := _fit(days, km, soh, weights, age)) is not None]
    if not fits:
        return []
    fits.sort(key=lambda f: f.sse)
    dof = max(len(days) - 3, 1)
    bound = fits[0].sse * (1.0 + CHI2_90_1DOF / dof)
    return [f for f in fits if f.sse <= bound]


def _fit(
    days: list[float], km: list[float], soh: list[float], weights: list[float], age0: float
) -> Fade | None:
    """The best fit with a, b >= 0 at one pack age (each active set tried)."""
    if len(days) < 3:
        return None
    t = np.sqrt(age0 + np.maximum(np.asarray(days, dtype=float), 0.0))
    d = np.asarray(km, dtype=float)
    y = np.asarray(soh, dtype=float)
    w = np.asarray(weights, dtype=float)
    full = np.column_stack([np.ones_like(t), -t, -d])
    best: tuple[float, np.ndarray, np.ndarray, list[int]] | None = None
    for use_a, use_b in product((True, False), repeat=2):
        columns = [0] + ([1] if use_a else []) + ([2] if use_b else [])
        x = full[:, columns]
        xtw = x.T * w
        gram = xtw @ x
        if np.linalg.cond(gram) > 1e12:
            continue
        beta = np.linalg.solve(gram, xtw @ y)
        if np.any(beta[1:] < 0):
            continue
        residual = y - x @ beta
        sse = float(residual @ (w * residual))
        if best is None or sse < best[0] - 1e-12:
            best = (sse, beta, np.linalg.inv(gram), columns)
    if best is None:
        return None
    sse, beta, inverse, columns = best
    dof = max(len(y) - len(columns), 1)
    params = np.zeros(3)
    covariance = np.zeros((3, 3))
    params[columns] = beta
    covariance[np.ix_(columns, columns)] = inverse * max(sse / dof, 1e-9)
    span = days[-1] - days[0]
    km_per_day = (km[-1] - km[0]) / span if span > 0 else 0.0
    return Fade(
        float(params[0]),
        float(params[1]),
        float(params[2]),
        covariance,
        age0,
        sse,
        days[-1],
        km[-1],
        km_per_day,
    )


def crossing(fade: Fade, threshold: float, horizon_days: float, band: float = 0.0) -> float | None:
    """Days after the first week when the fit (shifted by `band` standard errors) first
    falls to `threshold`, or None within the horizon."""

    def below(days: float) -> bool:
        value, error = fade.at(days)
        return value + band * error <= threshold

    if below(0.0):
        return 0.0
    if not below(horizon_days):
        return None
    low, high = 0.0, horizon_days
    for _ in range(50):
        middle = (low + high) / 2.0
        if below(middle):
            high = middle
        else:
            low = middle
    return high
