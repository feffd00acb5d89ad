"""The trained ensemble as the streaming agent uses it: raw feature windows in, RUL out."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from streamapp.contracts.predictions import estimate_fields
from streamapp.rul.training.conformal import Conformal
from streamapp.rul.training.data import Scaler, build_window, pad_window, smooth

#: Batch sizes above this are padded to a multiple of it; smaller ones to a power of two.
SHAPE_STEP = 64
#: Most windows one network call takes; a larger batch runs in slices of this size (a
#: multiple of SHAPE_STEP, so every slice has a padded shape). A member's activations and
#: oneDNN's per-shape buffers are then those of a 128-row batch whatever `rul_batch_size`:
#: running the ensemble at every batch size from 1 to 512 peaked at 366 MiB instead of
#: 414, in the same time (15.5 s against 15.2).
FORWARD_ROWS = 2 * SHAPE_STEP


def shape_bucket(rows: int) -> int:
    """The batch size a batch of `rows` windows is padded to before the networks run.

    oneDNN (torch's CPU convolutions and LSTMs) builds and caches kernels and scratch
    buffers per input shape, and a streaming worker's batches take every size from 1 to
    `rul_batch_size`: running the ensemble once at each size from 1 to 512 took a process
    from 223 MiB to a 690 MiB peak, padded to these sizes to 317 MiB. Padding to a few
    sizes (1, 2, 4, ... 64, then multiples of 64) costs at most 63 wasted rows (or twice
    a batch smaller than 64). Rows never mix: the networks run in eval mode, so each
    window's prediction is its own. An empty batch stays empty.
    """
    if rows <= SHAPE_STEP:
        return 1 << (rows - 1).bit_length() if rows else 0
    return -(-rows // SHAPE_STEP) * SHAPE_STEP


@dataclass
class EnsemblePrediction:
    """Per-row arrays of one `Ensemble.predict` call.

    `uncertainty` is the conformal half-width of the interval at `level` (before the lower bound
    is clipped at 0): the true RUL lies within rul +/- uncertainty with probability ~level.
    `spread` is the standard deviation of the member models' predictions (their disagreement).
    """

    rul: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    uncertainty: np.ndarray
    spread: np.ndarray
    scores: dict[str, np.ndarray]

    def row(self, i: int) -> dict[str, Any]:
        """Row i in the field names of the `rul-predictions` contract."""
        return estimate_fields(
            float(self.rul[i]),
            float(self.lower[i]),
            float(self.upper[i]),
            self.level,
            float(self.uncertainty[i]),
            {k: float(v[i]) for k, v in self.scores.items()},
        )


@dataclass(frozen=True)
class MemberInput:
    """What one member reads: the last `window` rows of the ensemble's window, normalised
    by `scaler`, then exponentially smoothed with `smoothing` (0: not smoothed). Members
    may differ: the CNN, whose head sees every position, reads a longer, z-scored history
    than the recurrent and TCN members (docs/models.md, "How the recipe was chosen")."""

    window: int
    scaler: Scaler
    smoothing: float = 0.0

    def tensor(self, batch: np.ndarray) -> torch.Tensor:
        """The network input for raw (B, >= window, F) windows."""
        scaled = self.scaler.transform(batch[:, -self.window :])
        return torch.from_numpy(smooth(scaled, self.smoothing))


@dataclass
class Ensemble:
    """LSTM/GRU/TCN/CNN members, their weights and inputs, and the conformal calibration.

    `window` is the longest member input: the rows a stream keeps per asset. `scaler` holds
    the raw feature names, and normalises the input of members without their own `inputs`.
    """

    version: str
    models: dict[str, nn.Module]
    weights: dict[str, float]
    scaler: Scaler
    window: int
    cap: float
    conformal: Conformal
    member_conformal: dict[str, Conformal] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, MemberInput] = field(default_factory=dict)

    def input_of(self, member: str) -> MemberInput:
        """The member's own input view, or the ensemble's window and scaler."""
        return self.inputs.get(member) or MemberInput(self.window, self.scaler)

    def member_tensors(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        """Each member's normalised network input for raw (B, window, F) windows (a view
        shared by members that read the same one is computed once)."""
        views: dict[tuple[int, int, float], torch.Tensor] = {}
        tensors = {}
        for name in self.models:
            view = self.input_of(name)
            key = (view.window, id(view.scaler), view.smoothing)
            if key not in views:
                views[key] = view.tensor(batch)
            tensors[name] = views[key]
        return tensors

    @property
    def feature_names(self) -> list[str]:
        """Raw features each window row must hold, in order (`s2_mean`, ...)."""
        return self.scaler.feature_names

    def build_window(self, records: list[dict[str, float]]) -> np.ndarray:
        """Feature dicts (oldest first, 1..window of them) -> padded raw (window, F) input."""
        return build_window(records[-self.window :], self.feature_names, self.window)

    def window_from_rows(self, rows: list[list[float]] | np.ndarray) -> np.ndarray:
        """Rows already in `feature_names` order (the streaming state) -> padded (window, F)."""
        return pad_window(np.asarray(rows[-self.window :], dtype=np.float64), self.window)

    def member_predictions(
        self, batch: np.ndarray, pool: Executor | None = None
    ) -> dict[str, np.ndarray]:
        """Each model's RUL for raw (B, window, F) windows, clipped to [0, cap].

        With a `pool`, the pieces (each member's slices of `FORWARD_ROWS` rows) run in its
        threads at the same time (torch releases the GIL inside a forward pass), so every
        thread is busy whatever the number and cost of the members; the numbers are the
        same either way, since rows never mix.
        """
        batch = np.asarray(batch)
        if batch.ndim != 3 or batch.shape[1:] != (self.window, len(self.feature_names)):
            raise ValueError(
                f"expected (B, {self.window}, {len(self.feature_names)}), got {batch.shape}"
            )
        rows = len(batch)
        padding = shape_bucket(rows) - rows
        if padding:
            batch = np.pad(batch, ((0, padding), (0, 0), (0, 0)), mode="edge")
        tensors = self.member_tensors(batch)
        pieces = [
            (name, part)
            for name in self.models
            for part in torch.split(tensors[name], FORWARD_ROWS)
        ]

        def run(piece: tuple[str, torch.Tensor]) -> torch.Tensor:
            name, part = piece
            with torch.inference_mode():  # thread-local: entered in the thread that runs
                return self.models[name](part)

        outputs = list(pool.map(run, pieces)) if pool else [run(piece) for piece in pieces]
        by_member: dict[str, list[torch.Tensor]] = {name: [] for name in self.models}
        for (name, _), out in zip(pieces, outputs, strict=True):
            by_member[name].append(out)
        return {
            name: np.clip(torch.cat(parts)[:rows].double().numpy() * self.cap, 0.0, self.cap)
            for name, parts in by_member.items()
        }

    def combine(self, scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted ensemble mean and the members' spread (std)."""
        stacked = np.stack([scores[n] for n in self.models])
        w = np.asarray([self.weights[n] for n in self.models])[:, None]
        return (w * stacked).sum(axis=0) / w.sum(), stacked.std(axis=0)

    def predict(
        self, batch: np.ndarray, level: float | None = None, pool: Executor | None = None
    ) -> EnsemblePrediction:
        """Ensemble RUL with conformal interval for raw, unscaled (B, window, F) windows."""
        scores = self.member_predictions(batch, pool)
        rul, spread = self.combine(scores)
        half = self.conformal.half_width(spread, level, rul)
        return EnsemblePrediction(
            rul=rul,
            lower=np.maximum(rul - half, 0.0),
            upper=rul + half,
            level=self.conformal.level if level is None else level,
            uncertainty=half,
            spread=spread,
            scores=scores,
        )
