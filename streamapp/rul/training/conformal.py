"""Split conformal prediction intervals.

With n exchangeable calibration scores s_i and a new score s, the interval built from the
ceil((n + 1) * level)-th smallest score covers with probability in [level, level + 1/(n + 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n+1)*level)-th smallest score (inf when n is too small for the level)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(ordered) + 1) * level)
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


@dataclass
class Conformal:
    """Calibrated interval half-widths: |y - yhat| <= q * scale, scale = 1 or spread + beta.

    `mode="normalized"` scales by the models' disagreement (std of their predictions) plus
    `beta` (the median calibration spread, so agreeing models still get a finite interval).
    The sorted calibration scores are kept so that any level can be served.
    """

    mode: str
    level: float
    beta: float
    scores: np.ndarray

    @classmethod
    def calibrate(
        cls, pred: np.ndarray, spread: np.ndarray, true: np.ndarray, mode: str, level: float
    ) -> Conformal:
        beta = float(np.median(spread)) if mode == "normalized" else 0.0
        conf = cls(mode, level, max(beta, 1e-6) if mode == "normalized" else 0.0, np.zeros(0))
        conf.scores = np.sort(np.abs(true - pred) / conf.scale(spread))
        return conf

    def scale(self, spread: np.ndarray) -> np.ndarray:
        if self.mode == "normalized":
            return np.asarray(spread, dtype=np.float64) + self.beta
        if self.mode == "absolute":
            return np.ones_like(np.asarray(spread, dtype=np.float64))
        raise ValueError(f"unknown conformal mode {self.mode!r}")

    def half_width(self, spread: np.ndarray, level: float | None = None) -> np.ndarray:
        """Interval radius per row at `level` (default: the calibrated level)."""
        q = conformal_quantile(self.scores, self.level if level is None else level)
        return q * self.scale(spread)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "level": self.level,
            "beta": self.beta,
            "n": len(self.scores),
            "quantile": conformal_quantile(self.scores, self.level),
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conformal:
        return cls(
            data["mode"], float(data["level"]), float(data["beta"]), np.asarray(data["scores"])
        )
