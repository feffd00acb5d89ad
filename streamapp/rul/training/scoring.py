"""Scores of the C-MAPSS protocol."""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d**2)))


def phm08_score(pred: np.ndarray, true: np.ndarray) -> float:
    """PHM08 score: late predictions (d > 0) cost more than early ones, d = pred - true."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def coverage(lower: np.ndarray, upper: np.ndarray, true: np.ndarray) -> float:
    """Fraction of true values inside [lower, upper]."""
    true = np.asarray(true)
    return float(np.mean((true >= lower) & (true <= upper)))


def interval_score(lower: np.ndarray, upper: np.ndarray, true: np.ndarray, level: float) -> float:
    """Mean interval (Winkler) score: width plus 2 / (1 - level) times each miss's distance.

    A proper scoring rule for central intervals at `level`: lower is better, and neither a
    narrow interval that misses nor a wide one that always covers can game it.
    """
    true = np.asarray(true, dtype=np.float64)
    penalty = 2.0 / (1.0 - level)
    below = np.maximum(lower - true, 0.0)
    above = np.maximum(true - upper, 0.0)
    return float(np.mean(upper - lower + penalty * (below + above)))
