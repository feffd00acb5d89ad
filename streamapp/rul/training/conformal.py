"""Split conformal prediction intervals.

With n exchangeable calibration scores s_i and a new score s, the interval built from the
ceil((n + 1) * level)-th smallest score covers with probability in [level, level + 1/(n + 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The modes `Conformal.calibrate` knows: one score scale for every row ("absolute"), the
#: members' disagreement ("normalized"), or a quantile per band of predicted RUL ("binned").
MODES = ("absolute", "normalized", "binned")
#: Bands of predicted RUL in "binned" mode; their edges are quantiles of the calibration
#: predictions, so each band holds about the same number of scores.
BINS = 4


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n+1)*level)-th smallest score (inf when n is too small for the level)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(ordered) + 1) * level)
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


@dataclass
class Conformal:
    """Calibrated interval half-widths: |y - yhat| <= q * scale.

    `mode="normalized"` scales by the models' disagreement (std of their predictions) plus
    `beta` (the median calibration spread, so agreeing models still get a finite interval).
    `mode="binned"` is Mondrian conformal over bands of the predicted RUL (`edges` between
    them): an engine predicted near failure is predicted far more precisely than one
    predicted healthy, and each band's own quantile covers at `level` within that band.
    The sorted calibration scores are kept (per band in "binned" mode), so any level can
    be served.
    """

    mode: str
    level: float
    beta: float
    scores: np.ndarray
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bands: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def calibrate(
        cls, pred: np.ndarray, spread: np.ndarray, true: np.ndarray, mode: str, level: float
    ) -> Conformal:
        if mode not in MODES:
            raise ValueError(f"unknown conformal mode {mode!r}")
        beta = float(np.median(spread)) if mode == "normalized" else 0.0
        conf = cls(mode, level, max(beta, 1e-6) if mode == "normalized" else 0.0, np.zeros(0))
        residuals = np.abs(true - pred)
        conf.scores = np.sort(residuals / conf.scale(spread))
        if mode == "binned":
            conf.edges = np.quantile(pred, np.arange(1, BINS) / BINS)
            band = conf.band_of(pred)
            conf.bands = [np.sort(residuals[band == b]) for b in range(BINS)]
        return conf

    def scale(self, spread: np.ndarray) -> np.ndarray:
        if self.mode == "normalized":
            return np.asarray(spread, dtype=np.float64) + self.beta
        if self.mode in ("absolute", "binned"):
            return np.ones_like(np.asarray(spread, dtype=np.float64))
        raise ValueError(f"unknown conformal mode {self.mode!r}")

    def band_of(self, pred: np.ndarray) -> np.ndarray:
        """The predicted-RUL band of each row ("binned" mode)."""
        return np.searchsorted(self.edges, np.asarray(pred, dtype=np.float64), side="right")

    def half_width(
        self, spread: np.ndarray, level: float | None = None, pred: np.ndarray | None = None
    ) -> np.ndarray:
        """Interval radius per row at `level` (default: the calibrated level); "binned"
        mode needs the rows' predictions."""
        level = self.level if level is None else level
        if self.mode == "binned":
            if pred is None:
                raise ValueError("binned conformal intervals need the predictions")
            quantiles = np.asarray([conformal_quantile(b, level) for b in self.bands])
            return quantiles[self.band_of(pred)]
        return conformal_quantile(self.scores, level) * self.scale(spread)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "mode": self.mode,
            "level": self.level,
            "beta": self.beta,
            "n": len(self.scores),
            "quantile": conformal_quantile(self.scores, self.level),
            "scores": self.scores.tolist(),
        }
        if self.mode == "binned":
            data["edges"] = self.edges.tolist()
            data["bands"] = [b.tolist() for b in self.bands]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conformal:
        return cls(
            data["mode"],
            float(data["level"]),
            float(data["beta"]),
            np.asarray(data["scores"]),
            np.asarray(data.get("edges", []), dtype=np.float64),
            [np.asarray(b, dtype=np.float64) for b in data.get("bands", [])],
        )
