"""Run-to-failure data: C-MAPSS and `extracted-features` JSON lines, labels, scaling, windows.

Every series is stored under the feature names the streaming feature agent emits for the
same data (C-MAPSS replayed one message per cycle into cycle windows gives `s2_mean`, ...),
so a model trained here serves the stream unchanged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CMAPSS_COLUMNS = ["unit", "cycle", "op1", "op2", "op3", *(f"s{i}" for i in range(1, 22))]
CMAPSS_SIGNALS = CMAPSS_COLUMNS[2:]
OP_SETTINGS = ["op1", "op2", "op3"]
# The 14 sensors that vary on FD001-like data (drops s1, s5, s6, s10, s16, s18, s19).
INFORMATIVE_SENSORS = [
    "s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"
]  # fmt: skip
DEFAULT_WINDOW = 30
DEFAULT_CAP = 125.0
SCALINGS = ("zscore", "minmax")


def feature_name(signal: str, feature: str = "mean") -> str:
    """The feature agent's naming rule `<signal>_<feature>`."""
    return f"{signal}_{feature}"


@dataclass
class Fleet:
    """Per-asset multivariate series with remaining-life labels at every step."""

    feature_names: list[str]
    units: list[str]
    series: list[np.ndarray]  # each (T, F) raw values, oldest first
    rul: list[np.ndarray]  # each (T,) uncapped remaining life at each step

    def subset(self, idx: list[int] | np.ndarray) -> Fleet:
        return Fleet(
            self.feature_names,
            [self.units[i] for i in idx],
            [self.series[i] for i in idx],
            [self.rul[i] for i in idx],
        )

    def columns(self, names: list[str]) -> Fleet:
        """The same fleet restricted to (and ordered as) `names`."""
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing)}")
        cols = [self.feature_names.index(n) for n in names]
        return Fleet(list(names), self.units, [s[:, cols] for s in self.series], self.rul)

    def __len__(self) -> int:
        return len(self.units)


def _read_table(path: Path) -> np.ndarray:
    table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if table.shape[1] != len(CMAPSS_COLUMNS):
        raise ValueError(f"{path}: expected {len(CMAPSS_COLUMNS)} columns, got {table.shape[1]}")
    return table


def _split_units(table: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    units, series = [], []
    for unit in np.unique(table[:, 0]):
        rows = table[table[:, 0] == unit]
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        units.append(str(int(unit)))
        series.append(rows[:, 2:])
    return units, series


def load_cmapss(data_dir: Path | str, subset: str, split: str = "train") -> Fleet:
    """Load `train_FD00x.txt` (RUL 0 at the last cycle) or `test_FD00x.txt` + `RUL_FD00x.txt`."""
    data_dir = Path(data_dir)
    subset = subset.upper()
    units, series = _split_units(_read_table(data_dir / f"{split}_{subset}.txt"))
    if split == "train":
        last = np.zeros(len(units))
    elif split == "test":
        last = np.loadtxt(data_dir / f"RUL_{subset}.txt", dtype=np.float64, ndmin=1)
        if len(last) != len(units):
            raise ValueError(f"RUL_{subset}.txt has {len(last)} rows for {len(units)} test units")
    else:
        raise ValueError(f"split must be train or test, not {split!r}")
    rul = [
        r + np.arange(len(s) - 1, -1, -1, dtype=np.float64)
        for s, r in zip(series, last, strict=True)
    ]
    return Fleet([feature_name(c) for c in CMAPSS_SIGNALS], units, series, rul)


def load_feature_records(path: Path | str, feature_names: list[str] | None = None) -> Fleet:
    """Load a JSON-lines export of `extracted-features` records as run-to-failure sequences.

    Each asset's records are ordered by window end (then timestamp); records of several sensors
    for the same window are merged, re-emitted windows (same asset and window end) count once,
    and the asset's last record is taken as its failure (RUL 0), so RUL = steps to the end.
    """
    steps: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    with Path(path).open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "asset_id" not in record or not isinstance(record.get("features"), dict):
                raise ValueError(f"{path}:{lineno}: record needs asset_id and features")
            window = record.get("window") or {}
            key = str(window.get("end") or record.get("timestamp") or "")
            if not key:
                raise ValueError(f"{path}:{lineno}: record needs window.end or timestamp")
            step = steps[str(record["asset_id"])].setdefault(key, {})
            step.update({k: float(v) for k, v in record["features"].items()})
    if not steps:
        raise ValueError(f"{path}: no records")
    if feature_names is None:
        names = set.intersection(*(set(s) for a in steps.values() for s in a.values()))
        feature_names = sorted(names)
    units, series, rul = [], [], []
    for asset in sorted(steps):
        ordered = [steps[asset][k] for k in sorted(steps[asset])]
        try:
            rows = [[s[n] for n in feature_names] for s in ordered]
        except KeyError as err:
            raise ValueError(f"asset {asset}: missing feature {err.args[0]}") from None
        units.append(asset)
        series.append(np.asarray(rows, dtype=np.float64))
        rul.append(np.arange(len(rows) - 1, -1, -1, dtype=np.float64))
    return Fleet(list(feature_names), units, series, rul)


def rul_labels(rul: np.ndarray, cap: float = DEFAULT_CAP) -> np.ndarray:
    """Piecewise-linear target: constant `cap` early in life, then linear down to 0."""
    return np.minimum(rul, cap)


def informative_features(fleet: Fleet, tol: float = 1e-6) -> list[str]:
    """Features whose values vary across the fleet (constant channels carry no wear signal)."""
    stacked = np.concatenate(fleet.series)
    return [n for n, s in zip(fleet.feature_names, stacked.std(axis=0), strict=True) if s > tol]


def find_conditions(ops: np.ndarray, tol: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Cluster operating settings into discrete conditions: (centroids (C, K), scale (K,)).

    Settings are divided by max(1, max |value|) so that sensor-noise-sized jitter (FD001) is one
    condition while the six C-MAPSS flight regimes (FD002/FD004) are six.
    """
    scale = np.maximum(1.0, np.abs(ops).max(axis=0))
    z = ops / scale
    unassigned = np.ones(len(z), dtype=bool)
    centroids = []
    while unassigned.any():
        seed = z[np.argmax(unassigned)]
        members = unassigned & (np.abs(z - seed) <= tol).all(axis=1)
        centroids.append(z[members].mean(axis=0))
        unassigned &= ~members
    order = np.lexsort(np.asarray(centroids).T[::-1])
    return np.asarray(centroids)[order] * scale, scale


@dataclass
class Scaler:
    """Per-operating-condition normalisation, fitted on training engines only.

    `feature_names` are the raw inputs in order; `input_names` are the ones normalised and fed
    to the networks; `condition_names` (may be empty) pick each row's operating condition.
    Both scalings are stored as (x - mean) / std: "zscore" uses the mean and standard
    deviation, "minmax" the mid-range and half-range (training data mapped onto [-1, 1], as in
    DCNN), so serving applies either one the same way.
    """

    feature_names: list[str]
    input_names: list[str]
    condition_names: list[str] = field(default_factory=list)
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((1, 0)))
    condition_scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((1, 0)))
    std: np.ndarray = field(default_factory=lambda: np.ones((1, 0)))

    @classmethod
    def fit(
        cls,
        fleet: Fleet,
        input_names: list[str],
        condition_names: list[str] | None = None,
        scaling: str = "zscore",
    ) -> Scaler:
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, not {scaling!r}")
        condition_names = list(condition_names or [])
        feature_names = condition_names + [n for n in input_names if n not in condition_names]
        scaler = cls(feature_names, list(input_names), condition_names)
        rows = np.concatenate(fleet.columns(feature_names).series)
        if condition_names:
            ops = rows[:, : len(condition_names)]
            scaler.centroids, scaler.condition_scale = find_conditions(ops)
        else:
            scaler.centroids, scaler.condition_scale = np.zeros((1, 0)), np.ones(0)
        cond = scaler.conditions(rows)
        x = rows[:, scaler.input_index]
        groups = [x[cond == c] for c in range(len(scaler.centroids))]
        if scaling == "minmax":
            scaler.mean = np.stack([(g.max(axis=0) + g.min(axis=0)) / 2 for g in groups])
            std = np.stack([(g.max(axis=0) - g.min(axis=0)) / 2 for g in groups])
        else:
            scaler.mean = np.stack([g.mean(axis=0) for g in groups])
            std = np.stack([g.std(axis=0) for g in groups])
        scaler.std = np.where(std > 1e-8, std, 1.0)
        return scaler

    @property
    def input_index(self) -> list[int]:
        """Columns of the network inputs among `feature_names`."""
        return [self.feature_names.index(n) for n in self.input_names]

    def conditions(self, rows: np.ndarray) -> np.ndarray:
        """Nearest operating condition of each row (all zeros for single-condition data)."""
        flat = rows.reshape(-1, rows.shape[-1])
        if not self.condition_names:
            return np.zeros(len(flat), dtype=np.int64).reshape(rows.shape[:-1])
        ops = flat[:, : len(self.condition_names)] / self.condition_scale
        dist = ((ops[:, None, :] - self.centroids[None] / self.condition_scale) ** 2).sum(-1)
        return dist.argmin(axis=1).reshape(rows.shape[:-1])

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Raw (..., F) in `feature_names` order -> normalised (..., S) float32 network input."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[-1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got {rows.shape[-1]}")
        x = rows[..., self.input_index]
        if len(self.mean) == 1:  # single condition: plain broadcasting, no per-row gather
            return ((x - self.mean[0]) / self.std[0]).astype(np.float32)
        cond = self.conditions(rows)
        return ((x - self.mean[cond]) / self.std[cond]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": self.feature_names,
            "input_names": self.input_names,
            "condition_names": self.condition_names,
            "centroids": self.centroids.tolist(),
            "condition_scale": self.condition_scale.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        n_in = len(data["input_names"])
        return cls(
            list(data["feature_names"]),
            list(data["input_names"]),
            list(data["condition_names"]),
            np.asarray(data["centroids"], dtype=np.float64).reshape(
                len(data["centroids"]), len(data["condition_names"])
            ),
            np.asarray(data["condition_scale"], dtype=np.float64),
            np.asarray(data["mean"], dtype=np.float64).reshape(-1, n_in),
            np.asarray(data["std"], dtype=np.float64).reshape(-1, n_in),
        )


def smooth(windows: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential smoothing along each window's time axis (..., T, F), from its first row.

    y_0 = x_0, y_t = alpha * x_t + (1 - alpha) * y_(t-1); alpha 0 (or 1) leaves the input
    as it is. Each window is smoothed from its own first row, never from rows before it,
    so a prediction depends on its window alone: a stream and an offline replay agree.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], not {alpha}")
    if alpha in (0.0, 1.0):
        return windows
    out = np.array(windows, copy=True)
    for t in range(1, out.shape[-2]):
        out[..., t, :] = alpha * out[..., t, :] + (1.0 - alpha) * out[..., t - 1, :]
    return out


def _front_pad(seq: np.ndarray, length: int) -> np.ndarray:
    """THE padding rule for short sequences: repeat the first row in front up to `length` rows.

    Repeating the first observation says "the asset looked like this before we saw it", which
    keeps the input inside the training distribution (zeros would be an impossible reading).
    """
    seq = np.asarray(seq)
    if len(seq) == 0:
        raise ValueError("cannot build a window from an empty sequence")
    missing = max(0, length - len(seq))
    return np.concatenate([np.repeat(seq[:1], missing, axis=0), seq]) if missing else seq


def pad_window(seq: np.ndarray, window: int) -> np.ndarray:
    """The (window, F) input for the last step of `seq` (T, F): its last `window` rows, padded."""
    return _front_pad(seq, window)[-window:]


def sequence_windows(seq: np.ndarray, window: int) -> np.ndarray:
    """Windows ending at every step of `seq`: (T, window, F); [t] == pad_window(seq[: t + 1])."""
    padded = _front_pad(seq, len(seq) + window - 1)
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def build_window(
    records: list[dict[str, float]], feature_names: list[str], window: int
) -> np.ndarray:
    """Feature dicts (oldest first, any length >= 1) -> the padded (window, F) raw input."""
    missing = sorted({n for r in records for n in feature_names if n not in r})
    if missing:
        raise ValueError(f"missing features: {', '.join(missing)}")
    rows = np.asarray([[r[n] for n in feature_names] for r in records], dtype=np.float64)
    return pad_window(rows.reshape(len(records), len(feature_names)), window)


def fleet_windows(
    fleet: Fleet, window: int, min_length: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All windows of a fleet whose sequence length is >= min_length.

    Returns raw windows (N, window, F), uncapped RUL (N,), and the engine index of each (N,).
    `min_length=1` includes the padded prefixes a stream produces at its start.
    """
    xs, ys, es = [], [], []
    for i, (seq, rul) in enumerate(zip(fleet.series, fleet.rul, strict=True)):
        keep = np.arange(len(seq)) + 1 >= min_length
        xs.append(sequence_windows(seq, window)[keep])
        ys.append(rul[keep])
        es.append(np.full(int(keep.sum()), i))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(es)


def last_windows(fleet: Fleet, window: int) -> tuple[np.ndarray, np.ndarray]:
    """One window per asset at its last observed step (the C-MAPSS test protocol)."""
    x = np.stack([pad_window(s, window) for s in fleet.series])
    return x, np.asarray([r[-1] for r in fleet.rul])


def split_engines(
    n: int, val_frac: float, cal_frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (fit, validation, calibration) engine indices: whole engines, never windows."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_frac))
    n_cal = max(1, round(n * cal_frac))
    if n_val + n_cal >= n:
        raise ValueError(f"{n} engines are too few for validation and calibration sets")
    val, cal, fit = order[:n_val], order[n_val : n_val + n_cal], order[n_val + n_cal :]
    return np.sort(fit), np.sort(val), np.sort(cal)


def fold_engines(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """`folds` disjoint groups of whole engines covering all n (sizes differ by at most 1)."""
    if not 2 <= folds <= n:
        raise ValueError(f"cannot split {n} engines into {folds} folds")
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[k::folds]) for k in range(folds)]


def cmapss_inputs(fleet: Fleet) -> tuple[list[str], list[str]]:
    """(network inputs, condition features) for a C-MAPSS training fleet.

    Inputs are the 14 informative sensors; the operating settings become condition features
    (per-condition normalisation) only when the training data has more than one condition.
    """
    ops = [feature_name(o) for o in OP_SETTINGS]
    centroids, _ = find_conditions(np.concatenate(fleet.columns(ops).series))
    return [feature_name(s) for s in INFORMATIVE_SENSORS], ops if len(centroids) > 1 else []
