"""O(1) mergeable moment accumulators, one row per signal, and the features they yield.

A row holds count, mean and the central moments M2..M4 (Welford/Terriberry updates,
Chan/Pebay merges), min, max, and the time mean, time M2 and time-value co-moment
of the least-squares slope. Central moments, not raw power sums, because raw sums
cancel catastrophically on signals such as `s8 = 2388.1 +- 0.07`.

Updates are written once, on numpy arrays, and run elementwise over many rows at a
time. Each row still sees the same sequence of IEEE operations as a scalar update
in record order, so the result does not depend on how records were batched: that
is what makes a replayed window byte-identical to the first emission.

Feature definitions (population statistics over the window's n samples):
    mean = sum(x)/n,  std = sqrt(m2),  m_k = sum((x - mean)^k)/n
    rms = sqrt(sum(x^2)/n), computed as hypot(mean, std) (no overflow or underflow)
    skewness = m3 / m2^1.5,  kurtosis = m4 / m2^2 (Pearson)
    crest_factor = max|x| / rms,  peak_to_peak = max - min
    slope = sum((t - mean_t)(x - mean)) / sum((t - mean_t)^2), x units per second.
Degenerate windows get defined values: a constant signal has std 0, skewness 0 and
kurtosis 0 (impossible otherwise: Pearson kurtosis is >= 1); an all-zero signal has
crest factor 0; a single sample or a single timestamp has slope 0.
"""

from __future__ import annotations

import numpy as np

N, MEAN, M2, M3, M4, MIN, MAX, TMEAN, TM2, CTX = range(10)
WIDTH = 10

FEATURES: tuple[str, ...] = (
    "count",
    "mean",
    "std",
    "min",
    "max",
    "rms",
    "skewness",
    "kurtosis",
    "crest_factor",
    "peak_to_peak",
    "slope",
)


def empty(rows: int) -> np.ndarray:
    """Accumulators of `rows` signals that have seen nothing."""
    acc = np.zeros((rows, WIDTH), dtype=np.float64)
    acc[:, MIN] = np.inf
    acc[:, MAX] = -np.inf
    return acc


def update(acc: np.ndarray, x: np.ndarray, t: np.ndarray) -> None:
    """Add one sample `x` at time `t` (seconds from the pane start) to each row, in place."""
    n = acc[:, N]
    mean = acc[:, MEAN]
    m2 = acc[:, M2]
    m3 = acc[:, M3]
    n1 = n + 1.0
    delta = x - mean
    delta_n = delta / n1
    delta_n2 = delta_n * delta_n
    term1 = delta * delta_n * n
    new_mean = mean + delta_n
    acc[:, M4] += (
        term1 * delta_n2 * (n1 * n1 - 3.0 * n1 + 3.0) + 6.0 * delta_n2 * m2 - (4.0 * delta_n * m3)
    )
    acc[:, M3] = m3 + term1 * delta_n * (n1 - 2.0) - 3.0 * delta_n * m2
    acc[:, M2] = m2 + term1
    acc[:, MEAN] = new_mean
    acc[:, MIN] = np.fmin(acc[:, MIN], x)
    acc[:, MAX] = np.fmax(acc[:, MAX], x)
    tmean = acc[:, TMEAN]
    dt = t - tmean
    new_tmean = tmean + dt / n1
    acc[:, TM2] += dt * (t - new_tmean)
    acc[:, CTX] += dt * (x - new_mean)
    acc[:, TMEAN] = new_tmean
    acc[:, N] = n1


def shift_time(acc: np.ndarray, seconds: float) -> np.ndarray:
    """The same accumulators with time measured from `seconds` earlier (a new origin)."""
    shifted = acc.copy()
    has_data = shifted[:, N] > 0
    shifted[has_data, TMEAN] += seconds
    return shifted


def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Accumulators of the union of two disjoint sample sets (same time origin)."""
    na, nb = a[:, N], b[:, N]
    n = na + nb
    out = a.copy()
    both = (na > 0) & (nb > 0)
    only_b = (na == 0) & (nb > 0)
    out[only_b] = b[only_b]
    if not both.any():
        return out
    a, b = a[both], b[both]
    na, nb, n = na[both], nb[both], n[both]
    delta = b[:, MEAN] - a[:, MEAN]
    delta2 = delta * delta
    nab = na * nb
    m2a, m2b, m3a, m3b = a[:, M2], b[:, M2], a[:, M3], b[:, M3]
    merged = np.empty_like(a)
    merged[:, N] = n
    merged[:, MEAN] = a[:, MEAN] + delta * nb / n
    merged[:, M2] = m2a + m2b + delta2 * nab / n
    merged[:, M3] = (
        m3a
        + m3b
        + delta2 * delta * nab * (na - nb) / (n * n)
        + 3.0 * delta * (na * m2b - nb * m2a) / n
    )
    merged[:, M4] = (
        a[:, M4]
        + b[:, M4]
        + delta2 * delta2 * nab * (na * na - nab + nb * nb) / (n * n * n)
        + 6.0 * delta2 * (na * na * m2b + nb * nb * m2a) / (n * n)
        + 4.0 * delta * (na * m3b - nb * m3a) / n
    )
    merged[:, MIN] = np.fmin(a[:, MIN], b[:, MIN])
    merged[:, MAX] = np.fmax(a[:, MAX], b[:, MAX])
    dt = b[:, TMEAN] - a[:, TMEAN]
    merged[:, TMEAN] = a[:, TMEAN] + dt * nb / n
    merged[:, TM2] = a[:, TM2] + b[:, TM2] + dt * dt * nab / n
    merged[:, CTX] = a[:, CTX] + b[:, CTX] + dt * delta * nab / n
    out[both] = merged
    return out


def features(acc: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature of every row; rows with no samples give count 0 and zeros."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = acc[:, N]
        safe_n = np.where(n > 0, n, 1.0)
        mean = np.where(n > 0, acc[:, MEAN], 0.0)
        var = np.where(n > 0, acc[:, M2] / safe_n, 0.0)
        varying = var > 0
        safe_var = np.where(varying, var, 1.0)
        low = np.where(n > 0, acc[:, MIN], 0.0)
        high = np.where(n > 0, acc[:, MAX], 0.0)
        rms = np.hypot(mean, np.sqrt(var))
        peak = np.maximum(np.abs(low), np.abs(high))
        tm2 = acc[:, TM2]
        skewness = acc[:, M3] / safe_n / (safe_var * np.sqrt(safe_var))
        kurtosis = acc[:, M4] / safe_n / (safe_var * safe_var)
        return {
            "count": n,
            "mean": mean,
            "std": np.sqrt(var),
            "min": low,
            "max": high,
            "rms": rms,
            "skewness": np.where(varying, skewness, 0.0),
            "kurtosis": np.where(varying, kurtosis, 0.0),
            "crest_factor": np.where(rms > 0, peak / np.where(rms > 0, rms, 1.0), 0.0),
            "peak_to_peak": high - low,
            "slope": np.where(tm2 > 0, acc[:, CTX] / np.where(tm2 > 0, tm2, 1.0), 0.0),
        }
