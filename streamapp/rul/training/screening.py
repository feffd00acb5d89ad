"""Out-of-fold screening: the evidence each choice of the recipe rests on, no test data.

A candidate is one member network with its input view (kind, window, scaling,
smoothing). It is cross-fitted over the training engines (K folds of whole engines; one
network per fold, trained on the other K-1 folds for a fixed number of epochs) and every
held-out engine is scored at every cycle >= `first_cycle`, by the network that never saw
it. Every candidate is scored on the same rows whatever its window (a shorter history is
front-padded, as in a stream), so candidates and ensembles of them compare row by row.
Each candidate's out-of-fold predictions are saved, and ensembles are then scored from
those files, weights included, without training again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from streamapp.rul.training.data import DEFAULT_CAP, DEFAULT_WINDOW, Fleet, fold_engines
from streamapp.rul.training.scoring import rmse
from streamapp.rul.training.train import (
    SEED_STRIDE,
    EpochCallback,
    Task,
    TrainConfig,
    choose_weights,
    fit_scalers,
    fold_task,
    member_view,
    run_tasks,
    view_tensors,
)

#: Held-out rows start at this cycle for every candidate: the first with a full window of
#: the default length, so a longer window's gain is not bought by dropping early rows.
FIRST_CYCLE = DEFAULT_WINDOW


@dataclass(frozen=True)
class Candidate:
    """One member network and the input view it reads."""

    kind: str
    window: int
    scaling: str = "minmax"
    smoothing: float = 0.0
    replicas: int = 1

    @property
    def name(self) -> str:
        name = f"{self.kind}-w{self.window}-{self.scaling}-s{self.smoothing:g}"
        return f"{name}-r{self.replicas}" if self.replicas > 1 else name

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """`kind:window[:scaling[:smoothing[:replicas]]]`, e.g. `gru:30:minmax:0.3` or
        `cnn:60:zscore:0.3:3` (the average of 3 networks of different seeds, as `--seeds`)."""
        parts = text.split(":")
        if not 2 <= len(parts) <= 5:
            raise ValueError(
                f"candidate {text!r}: expected kind:window[:scaling[:smoothing[:replicas]]]"
            )
        scaling = parts[2] if len(parts) > 2 else "minmax"
        smoothing = float(parts[3]) if len(parts) > 3 else 0.0
        replicas = int(parts[4]) if len(parts) > 4 else 1
        if replicas < 1:
            raise ValueError(f"candidate {text!r}: replicas must be >= 1")
        return cls(parts[0], int(parts[1]), scaling, smoothing, replicas)

    def config(self, base: TrainConfig) -> TrainConfig:
        """The training configuration of this candidate alone (no per-member overrides)."""
        return replace(
            base,
            models=(self.kind,),
            window=self.window,
            scaling=self.scaling,
            smoothing=self.smoothing,
            inputs={},
        )


def screen(
    fleet: Fleet,
    input_names: list[str],
    condition_names: list[str] | None,
    candidate: Candidate,
    base: TrainConfig,
    first_cycle: int = FIRST_CYCLE,
    jobs: int = 1,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Cross-fit `candidate` over `base.folds` folds; its out-of-fold predictions and RMSE."""
    cfg = candidate.config(base)
    folds = fold_engines(len(fleet), cfg.folds, cfg.seed)
    scalers = fit_scalers(fleet, input_names, condition_names, cfg)
    view = member_view(candidate.kind, cfg)
    scaler = scalers[view]
    fleet = fleet.columns(scaler.feature_names)
    train = [view_tensors(fleet.subset(f), view, scaler, 1, cfg.cap) for f in folds]
    held = [view_tensors(fleet.subset(f), view, scaler, first_cycle, cfg.cap) for f in folds]
    data = {"views": {view: {"train": train, "held_out": held}}}
    # Task index r * folds + k: replica r of fold k (replica 0 is the single network).
    tasks = [(candidate.kind, i) for i in range(cfg.folds * candidate.replicas)]
    results = run_tasks(replica_fold_task, tasks, data, cfg, jobs, on_epoch)
    by_fold = [
        np.mean([results[r * cfg.folds + k]["held_out"] for r in range(candidate.replicas)], axis=0)
        for k in range(cfg.folds)
    ]
    pred = np.concatenate(by_fold)
    true = np.concatenate([y for _, y in held])
    engines = np.concatenate(
        [np.repeat(f, [max(0, len(fleet.series[i]) - first_cycle + 1) for i in f]) for f in folds]
    )
    return {
        "candidate": asdict(candidate),
        "name": candidate.name,
        "folds": cfg.folds,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "first_cycle": first_cycle,
        "oof_rmse": rmse(pred, true),
        "train_seconds": sum(r["info"]["train_seconds"] for r in results),
        "pred": pred,
        "true": true,
        "engine": engines,
    }


def replica_fold_task(
    data: dict[str, Any], task: Task, cfg: TrainConfig, on_epoch: EpochCallback | None
) -> dict[str, Any]:
    """Replica r of fold k's network: the fold's split, the r-th replica's seed (`--seeds`)."""
    kind, index = task
    replica, fold = divmod(index, cfg.folds)
    seeded = replace(cfg, seed=cfg.seed + SEED_STRIDE * replica)
    return fold_task(data, (kind, fold), seeded, on_epoch)


def save(result: dict[str, Any], out: Path) -> Path:
    """`<name>.npz` (predictions, labels, engines) and `<name>.json` (the rest)."""
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: result[k] for k in ("pred", "true", "engine")}
    np.savez(out / f"{result['name']}.npz", **arrays)
    summary = {k: v for k, v in result.items() if k not in arrays}
    (out / f"{result['name']}.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return out / f"{result['name']}.json"


def load(out: Path, name: str) -> dict[str, Any]:
    summary = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    with np.load(out / f"{name}.npz") as arrays:
        return {**summary, **{k: arrays[k] for k in arrays.files}}


def combine(results: list[dict[str, Any]], cap: float = DEFAULT_CAP) -> dict[str, Any]:
    """Out-of-fold RMSE of an ensemble of screened candidates, weights chosen as `train`
    chooses them (equal or inverse-MSE, on these out-of-fold rows)."""
    first = results[0]
    for other in results[1:]:
        same = (other["folds"], other["seed"], other["first_cycle"]) == (
            first["folds"], first["seed"], first["first_cycle"],
        )  # fmt: skip
        if not same or not np.array_equal(other["true"], first["true"]):
            raise ValueError(f"{other['name']} was not screened on the rows of {first['name']}")
    scores = {r["name"]: np.clip(r["pred"], 0, cap) for r in results}
    weighting = choose_weights(scores, first["true"])
    return {
        "members": list(scores),
        "scheme": weighting["scheme"],
        "weights": weighting["weights"],
        "oof_rmse": weighting["val_rmse"][weighting["scheme"]],
        "without": weighting["without"],
    }
