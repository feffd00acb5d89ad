"""Training of the ensemble: member networks, weights, and conformal calibration.

Default (`folds` <= 1): engines are split whole into fit / validation / calibration sets.
Members train on every window of the fit engines, including the padded prefixes a stream
produces at its start, and stop early on the validation "last-cycle" RMSE: the error at the
last observed cycle of every truncation of the validation engines with a full window (the
test protocol's situation). With `refit`, each member is then retrained on fit + validation
engines for its best epoch count; calibration engines are never trained on, so the conformal
guarantee holds.

With `folds` = K > 1: cross-fitting. The engines are split whole into K folds; each member
trains one network per fold on the other K-1 folds for a fixed number of epochs and is served
as the average of its K networks. Out-of-fold predictions (every engine scored by the network
that never saw it, at every full window) choose the ensemble weights and are the conformal
calibration scores, so all engines are used for training and for calibration.

With `seeds` = N > 1 (split only), each member is the average of N networks trained with
different seeds (each with its own early stopping and refit), which cuts the seed-to-seed
variance of a single network. The networks (members x seeds, or members x folds) are
independent tasks: `jobs` > 1 trains them in that many processes (spawned, each with the
caller's torch thread count); seeds depend on the member kind and replica only, so the
result is the same as training them one after another.

Each member reads its own input view, a window and a scaling (`member_view`): by default
the run's, except the CNN's (`MEMBER_INPUTS`). Every view's windows end at the same
cycles, so the members' validation, calibration and out-of-fold predictions line up.
"""

from __future__ import annotations

import copy
import logging
import math
import multiprocessing
import queue
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from streamapp.rul.serving.ensemble import Ensemble, MemberInput
from streamapp.rul.training.conformal import MODES, Conformal
from streamapp.rul.training.data import (
    DEFAULT_CAP,
    DEFAULT_WINDOW,
    Fleet,
    Scaler,
    fleet_windows,
    fold_engines,
    rul_labels,
    split_engines,
)
from streamapp.rul.training.networks import (
    DEFAULT_HPARAMS,
    MODEL_KINDS,
    Averaged,
    build_model,
    count_params,
)
from streamapp.rul.training.scoring import coverage, interval_score, rmse

log = logging.getLogger(__name__)

EpochCallback = Callable[[str, int, int, float, float, float], None]


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the artifact's metrics)."""

    models: tuple[str, ...] = ("lstm", "gru", "tcn", "cnn")
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    noise: float = 0.0
    ema: float = 0.995
    refit: bool = True
    patience: int = 10
    seed: int = 42
    window: int = DEFAULT_WINDOW
    cap: float = DEFAULT_CAP
    val_frac: float = 0.1
    cal_frac: float = 0.1
    level: float = 0.9
    folds: int = 0
    seeds: int = 1
    scaling: str = "minmax"
    smoothing: float = 0.0
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(MEMBER_INPUTS))


# Members whose input differs from the run's `window` and `scaling` (the shipped recipe;
# docs/models.md, "How the recipe was chosen"): the CNN, whose flattened head sees where in
# the window a trend starts, reads twice the window (60 rows), z-scored. A member may also
# name its own `window` (rows) and `smoothing`.
MEMBER_INPUTS: dict[str, dict[str, Any]] = {"cnn": {"window_factor": 2, "scaling": "zscore"}}

View = tuple[int, str, float]  # (window, scaling, smoothing): the input a member reads


def member_view(kind: str, cfg: TrainConfig) -> View:
    """The window, scaling and smoothing of a member's input (its own, or the run's)."""
    own = cfg.inputs.get(kind, {})
    return (
        int(own.get("window", cfg.window * int(own.get("window_factor", 1)))),
        str(own.get("scaling", cfg.scaling)),
        float(own.get("smoothing", cfg.smoothing)),
    )


def fit_scalers(
    fleet: Fleet, input_names: list[str], condition_names: list[str] | None, cfg: TrainConfig
) -> dict[View, Scaler]:
    """One scaler per distinct member input, fitted on `fleet` (training engines only)."""
    views = dict.fromkeys(member_view(kind, cfg) for kind in cfg.models)
    return {v: Scaler.fit(fleet, input_names, condition_names, v[1]) for v in views}


def member_hparams(kind: str, cfg: TrainConfig) -> dict[str, Any]:
    """A member's network hyper-parameters (the CNN's flatten layer needs the window length)."""
    params = dict(cfg.hparams.get(kind, DEFAULT_HPARAMS[kind]))
    if "window" in params:  # layers sized by the input length (CNN flatten, positions)
        params["window"] = member_view(kind, cfg)[0]
    return params


def member_seed(seed: int, kind: str) -> int:
    """A member's seed depends on its kind, not its position, so a member trains identically
    whichever other members are chosen (lstm, gru and tcn keep their former seeds)."""
    return seed + 1000 * MODEL_KINDS.index(kind)


# Offset between the seeds of a member's replicas (cross-fit folds use offsets 0..K-1).
SEED_STRIDE = 100


def replica_seed(seed: int, kind: str, replica: int) -> int:
    """Seed of replica `replica` of a member; replica 0 is the single-network member seed."""
    return member_seed(seed, kind) + SEED_STRIDE * replica


def seed_everything(seed: int) -> None:
    """Fixed seeds for numpy and torch (CPU training is then repeatable)."""
    np.random.seed(seed)
    torch.manual_seed(seed)


def _predict(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


def train_network(
    kind: str,
    x_fit: torch.Tensor,
    y_fit: torch.Tensor,
    x_val: torch.Tensor | None,
    y_val: np.ndarray | None,
    cfg: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
    fixed_epochs: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Adam + cosine LR decay on MSE of RUL/cap; keeps the epoch with the best validation RMSE.

    With `cfg.ema` > 0 the scored network is an exponential moving average of the weights
    (per step), which smooths the epoch-to-epoch jumps of the validation error. With
    `fixed_epochs` (a refit, no validation data) it runs exactly that many epochs of the same
    schedule and keeps the last state.
    """
    seed_everything(seed)
    model = build_model(kind, x_fit.shape[-1], member_hparams(kind, cfg))
    scored = model
    if cfg.ema > 0:
        ema_fn = torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema)
        averaged = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_fn)
        scored = averaged.module
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr * 0.05)
    gen = torch.Generator().manual_seed(seed)
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    history = []
    for epoch in range(1, (fixed_epochs or cfg.epochs) + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_fit), generator=gen)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = x_fit[idx]
            if cfg.noise > 0:
                # Optional Gaussian jitter on the z-scored inputs against memorising the
                # overlapping windows (0.15 measured neutral on FD001 once EMA was on).
                x = x + cfg.noise * torch.randn(x.shape, generator=gen)
            loss = nn.functional.mse_loss(model(x), y_fit[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scored is not model:
                averaged.update_parameters(model)
            total += loss.item() * len(idx)
        sched.step()
        val_rmse = math.nan
        if x_val is not None and y_val is not None:
            val_rmse = rmse(np.clip(_predict(scored, x_val) * cfg.cap, 0, cfg.cap), y_val)
        train_rmse = math.sqrt(total / len(order)) * cfg.cap
        history.append({"epoch": epoch, "train_rmse": train_rmse, "val_rmse": val_rmse})
        if val_rmse < best[0] or fixed_epochs:
            best = (val_rmse, epoch, copy.deepcopy(scored.state_dict()))
        if on_epoch:
            total_epochs = fixed_epochs or cfg.epochs
            label = f"{kind} refit" if fixed_epochs and x_val is None else kind
            on_epoch(label, epoch, total_epochs, train_rmse, val_rmse, time.perf_counter() - start)
        if not fixed_epochs and epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return model, {
        "best_epoch": best[1],
        "val_rmse": best[0],
        "epochs_run": len(history),
        "params": count_params(model),
        "history": history,
    }


def choose_weights(scores: dict[str, np.ndarray], true: np.ndarray) -> dict[str, Any]:
    """Equal vs inverse-MSE weights; the one with the lower validation RMSE wins (both logged)."""
    mse = {n: rmse(p, true) ** 2 for n, p in scores.items()}
    candidates = {
        "equal": {n: 1.0 / len(scores) for n in scores},
        "inverse_mse": {n: (1 / m) / sum(1 / v for v in mse.values()) for n, m in mse.items()},
    }
    val = {}
    for name, w in candidates.items():
        val[name] = rmse(np.sum([w[n] * scores[n] for n in scores], axis=0), true)
    chosen = min(val, key=val.__getitem__)
    # Does each member earn its place? Validation RMSE of the ensemble without it (same scheme).
    without = {}
    if len(scores) > 2:
        for left_out in scores:
            rest = {n: p for n, p in scores.items() if n != left_out}
            without[left_out] = choose_weights(rest, true)["val_rmse"][chosen]
    return {"scheme": chosen, "weights": candidates[chosen], "val_rmse": val, "without": without}


Task = tuple[str, int]  # (member kind, replica: seed replica or cross-fit fold)
TaskFn = Callable[[dict[str, Any], Task, TrainConfig, EpochCallback | None], dict[str, Any]]

# Set in each worker process by `_init_worker`: the training tensors (sent once per
# process, not once per task) and the queue that carries progress lines to the parent.
_WORKER: dict[str, Any] = {}


def _init_worker(data: dict[str, Any], threads: int, progress: Any) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(data=data, progress=progress)


def _in_worker(fn: TaskFn, task: Task, cfg: TrainConfig, report: bool) -> dict[str, Any]:
    def forward(*args: Any) -> None:
        _WORKER["progress"].put(args)

    return fn(_WORKER["data"], task, cfg, forward if report else None)


def run_tasks(
    fn: TaskFn,
    tasks: list[Task],
    data: dict[str, Any],
    cfg: TrainConfig,
    jobs: int,
    on_epoch: EpochCallback | None,
) -> list[dict[str, Any]]:
    """`fn(data, task, cfg, on_epoch)` for every task, in up to `jobs` spawned processes.

    Each process uses this process's torch thread count and every task seeds itself, so the
    results do not depend on `jobs` or on the order in which tasks finish.
    """
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(data, task, cfg, on_epoch) for task in tasks]
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                line = progress.get_nowait()
            except queue.Empty:
                return
            if on_epoch:
                on_epoch(*line)

    with ProcessPoolExecutor(
        min(jobs, len(tasks)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(data, torch.get_num_threads(), progress),
    ) as pool:
        futures = [pool.submit(_in_worker, fn, t, cfg, on_epoch is not None) for t in tasks]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            drain()
        results = [f.result() for f in futures]
    drain()
    return results


def _labelled(on_epoch: EpochCallback | None, suffix: str) -> EpochCallback | None:
    if on_epoch is None or not suffix:
        return on_epoch

    def progress(label: str, *rest: Any) -> None:
        on_epoch(f"{label} {suffix}", *rest)

    return progress


def _scores(model: nn.Module, x: torch.Tensor, cap: float) -> np.ndarray:
    return np.clip(_predict(model, x) * cap, 0, cap)


def _split_task(
    data: dict[str, Any], task: Task, cfg: TrainConfig, on_epoch: EpochCallback | None
) -> dict[str, Any]:
    """One network of the split protocol: early stopping on validation, then its refit."""
    kind, replica = task
    x = data["views"][member_view(kind, cfg)]
    seed = replica_seed(cfg.seed, kind, replica)
    progress = _labelled(on_epoch, f"seed {replica + 1}/{cfg.seeds}" if cfg.seeds > 1 else "")
    t0 = time.perf_counter()
    model, info = train_network(
        kind, x["fit"], data["y_fit"], x["val"], data["y_val"], cfg, seed, progress
    )
    info["seed"] = seed
    info["train_seconds"] = time.perf_counter() - t0
    out = {"val": _scores(model, x["val"], cfg.cap), "cal": _scores(model, x["cal"], cfg.cap)}
    if cfg.refit:
        # Validation engines have chosen the epoch count; now they join the training data
        # (same seed, same schedule). Calibration engines stay unseen.
        t0 = time.perf_counter()
        model, _ = train_network(
            kind, x["all"], data["y_all"], None, None, cfg, seed, progress, info["best_epoch"]
        )
        info["refit_seconds"] = time.perf_counter() - t0
    return {**out, "model": model, "info": info}


def fold_task(
    data: dict[str, Any], task: Task, cfg: TrainConfig, on_epoch: EpochCallback | None
) -> dict[str, Any]:
    """One cross-fit network: trained on every fold but `k` for a fixed epoch count."""
    kind, k = task
    view = data["views"][member_view(kind, cfg)]
    others = [j for j in range(cfg.folds) if j != k]
    x_tr = torch.cat([view["train"][j][0] for j in others])
    y_tr = np.concatenate([view["train"][j][1] for j in others]) / cfg.cap
    x_held, y_held = view["held_out"][k]
    t0 = time.perf_counter()
    model, info = train_network(
        kind, x_tr, torch.from_numpy(y_tr.astype(np.float32)), x_held, y_held, cfg,
        member_seed(cfg.seed, kind) + k, _labelled(on_epoch, f"fold {k + 1}/{cfg.folds}"),
        cfg.epochs,
    )  # fmt: skip
    info["train_seconds"] = time.perf_counter() - t0
    return {"model": model, "info": info, "held_out": _scores(model, x_held, cfg.cap)}


def train_ensemble(
    fleet: Fleet,
    input_names: list[str],
    condition_names: list[str] | None = None,
    cfg: TrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
    jobs: int = 1,
) -> Ensemble:
    """Split engines, fit the scaler on fit engines only, train members, weight and calibrate.

    `jobs` = processes training networks at the same time (the result does not depend on it).
    """
    cfg = cfg or TrainConfig()
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be >= 1, not {cfg.seeds}")
    if cfg.folds > 1:
        if cfg.seeds > 1:
            raise ValueError(
                "seeds > 1 applies to the split protocol; cross-fitting averages folds"
            )
        return _train_cross_fit(fleet, input_names, condition_names, cfg, on_epoch, jobs)
    started = time.perf_counter()
    fit_idx, val_idx, cal_idx = split_engines(len(fleet), cfg.val_frac, cfg.cal_frac, cfg.seed)
    scalers = fit_scalers(fleet.subset(fit_idx), input_names, condition_names, cfg)
    fleet = fleet.columns(next(iter(scalers.values())).feature_names)

    def target(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((y / cfg.cap).astype(np.float32))

    # Every input view has a window ending at the same cycles, so the labels are shared;
    # validation and calibration score the cycles with a full `cfg.window` of history.
    views: dict[View, dict[str, torch.Tensor]] = {}
    for view, scaler in scalers.items():
        x_fit, y_fit = view_tensors(fleet.subset(fit_idx), view, scaler, 1, cfg.cap)
        x_val, y_val = view_tensors(fleet.subset(val_idx), view, scaler, cfg.window, cfg.cap)
        x_cal, y_cal = view_tensors(fleet.subset(cal_idx), view, scaler, cfg.window, cfg.cap)
        views[view] = {"fit": x_fit, "val": x_val, "cal": x_cal}
        if cfg.refit:
            x_more, y_more = view_tensors(fleet.subset(val_idx), view, scaler, 1, cfg.cap)
            views[view]["all"] = torch.cat([x_fit, x_more])
    data: dict[str, Any] = {"views": views, "y_fit": target(y_fit), "y_val": y_val}
    if cfg.refit:
        data["y_all"] = target(np.concatenate([y_fit, y_more]))
    log.info("windows: fit %d, validation %d, calibration %d", len(y_fit), len(y_val), len(y_cal))

    tasks = [(kind, r) for kind in cfg.models for r in range(cfg.seeds)]
    results = dict(
        zip(tasks, run_tasks(_split_task, tasks, data, cfg, jobs, on_epoch), strict=True)
    )
    models, member_metrics, val_scores, cal_first = {}, {}, {}, {}
    for kind in cfg.models:
        runs = [results[(kind, r)] for r in range(cfg.seeds)]
        nets = [run["model"] for run in runs]
        models[kind] = nets[0] if cfg.seeds == 1 else Averaged(nets).eval()
        val_scores[kind] = np.mean([run["val"] for run in runs], axis=0)
        cal_first[kind] = np.mean([run["cal"] for run in runs], axis=0)
        infos = [run["info"] for run in runs]
        if cfg.seeds == 1:
            member_metrics[kind] = infos[0]
        else:
            member_metrics[kind] = {
                "params": count_params(models[kind]),
                "val_rmse": rmse(val_scores[kind], y_val),
                "best_epoch": [i["best_epoch"] for i in infos],
                "seed_val_rmse": [i["val_rmse"] for i in infos],
                "train_seconds": sum(i["train_seconds"] for i in infos),
                "refit_seconds": sum(i.get("refit_seconds", 0.0) for i in infos),
                "seeds": [i["seed"] for i in infos],
                "history": [i["history"] for i in infos],
            }

    weighting = choose_weights(val_scores, y_val)
    modes = {}
    val_pred = sum(weighting["weights"][k] * v for k, v in val_scores.items())
    val_spread = np.stack(list(val_scores.values())).std(axis=0)
    cal_pred = sum(weighting["weights"][k] * v for k, v in cal_first.items())
    cal_spread = np.stack(list(cal_first.values())).std(axis=0)
    for mode in MODES:
        conf = Conformal.calibrate(cal_pred, cal_spread, y_cal, mode, cfg.level)
        half = conf.half_width(val_spread, pred=val_pred)
        lo, hi = np.maximum(val_pred - half, 0), val_pred + half
        modes[mode] = {
            "val_coverage": coverage(lo, hi, y_val),
            "val_mean_width": float(np.mean(hi - lo)),
            "val_interval_score": interval_score(lo, hi, y_val, cfg.level),
        }
    # The mode with the best validation interval score (width plus misses; every figure
    # is recorded in the metrics): narrowness alone would reward under-covering.
    mode = min(modes, key=lambda m: modes[m]["val_interval_score"])

    hparams = {k: member_hparams(k, cfg) for k in models}
    if cfg.seeds > 1:
        hparams = {k: {**h, "replicas": cfg.seeds} for k, h in hparams.items()}
    cal_scores = {
        k: _scores(m, views[member_view(k, cfg)]["cal"], cfg.cap) for k, m in models.items()
    }
    ens = _calibrated_ensemble(
        models, weighting["weights"], scalers, cfg, hparams, cal_scores, y_cal, mode
    )
    config = asdict(cfg)
    config["models"] = list(cfg.models)
    ens.metrics = {
        "config": config,
        "engines": {"fit": len(fit_idx), "validation": len(val_idx), "calibration": len(cal_idx)},
        "windows": {"fit": len(y_fit), "validation": len(y_val), "calibration": len(y_cal)},
        "members": member_metrics,
        "weighting": weighting,
        "validation_rmse": {
            **{k: rmse(v, y_val) for k, v in val_scores.items()},
            "ensemble": rmse(val_pred, y_val),
        },
        "validation_note": "validation figures are of the first-pass members (before refit)",
        "conformal_modes": modes,
        "conformal_mode": mode,
        "train_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "jobs": jobs,
    }
    return ens


def view_tensors(
    fleet: Fleet, view: View, scaler: Scaler, min_length: int, cap: float
) -> tuple[torch.Tensor, np.ndarray]:
    """Normalised windows of one input view for every cycle >= min_length, and capped RUL."""
    x, y, _ = fleet_windows(fleet, view[0], min_length)
    return member_input(view, scaler).tensor(x), rul_labels(y, cap)


def member_input(view: View, scaler: Scaler) -> MemberInput:
    """What a member of input `view` reads when it serves, with its fitted `scaler`."""
    window, _, smoothing = view
    return MemberInput(window, scaler, smoothing)


def _calibrated_ensemble(
    models: Mapping[str, nn.Module],
    weights: dict[str, float],
    scalers: dict[View, Scaler],
    cfg: TrainConfig,
    hparams: dict[str, dict[str, Any]],
    scores: dict[str, np.ndarray],
    y: np.ndarray,
    mode: str,
) -> Ensemble:
    """The ensemble with its interval (in `mode`) and each member's (absolute) calibrated on
    `scores`, the members' predictions for engines none of them trained on."""
    views = {k: member_view(k, cfg) for k in models}
    inputs = {k: member_input(view, scalers[view]) for k, view in views.items()}
    ens = Ensemble(
        version="",
        models=dict(models),
        weights=weights,
        scaler=next(iter(scalers.values())),
        window=max(view.window for view in inputs.values()),
        cap=cfg.cap,
        conformal=Conformal("absolute", cfg.level, 0.0, np.zeros(0)),
        hparams=hparams,
        inputs=inputs,
    )
    pred, spread = ens.combine(scores)
    ens.conformal = Conformal.calibrate(pred, spread, y, mode, cfg.level)
    ens.member_conformal = {
        k: Conformal.calibrate(s, np.zeros_like(s), y, "absolute", cfg.level)
        for k, s in scores.items()
    }
    return ens


def _train_cross_fit(
    fleet: Fleet,
    input_names: list[str],
    condition_names: list[str] | None,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None,
    jobs: int,
) -> Ensemble:
    """K-fold cross-fitting: every engine trains K-1 fold models and is held out by one.

    Each member is the average of its K fold models, so all engines are trained on and the
    average also cuts the seed-to-seed variance. The out-of-fold predictions (each engine
    scored by the one model that never saw it) choose the weights and give the conformal
    scores; by convexity a single fold model's squared error on new engines is on average at
    least that of the average, so the intervals are, if anything, conservative (cf. CV+,
    Barber et al. 2021; FD001 test coverage 0.92 at level 0.9). The scalers (one per member
    input) are fitted on all engines, to serve the averaged models. Epochs are fixed (no
    early stopping on the held-out fold, which also calibrates); absolute scores only,
    because the fold models disagree more than the averaged members that serve.
    """
    started = time.perf_counter()
    folds = fold_engines(len(fleet), cfg.folds, cfg.seed)
    scalers = fit_scalers(fleet, input_names, condition_names, cfg)
    fleet = fleet.columns(next(iter(scalers.values())).feature_names)
    views = {
        view: {
            "train": [view_tensors(fleet.subset(f), view, scaler, 1, cfg.cap) for f in folds],
            "held_out": [
                view_tensors(fleet.subset(f), view, scaler, cfg.window, cfg.cap) for f in folds
            ],
        }
        for view, scaler in scalers.items()
    }
    data = {"views": views}
    first = next(iter(views.values()))
    y_oof = np.concatenate([y for _, y in first["held_out"]])
    tasks = [(kind, k) for kind in cfg.models for k in range(cfg.folds)]
    results = dict(zip(tasks, run_tasks(fold_task, tasks, data, cfg, jobs, on_epoch), strict=True))
    models, member_metrics, oof = {}, {}, {}
    for kind in cfg.models:
        runs = [results[(kind, k)] for k in range(cfg.folds)]
        infos = [run["info"] for run in runs]
        models[kind] = Averaged([run["model"] for run in runs]).eval()
        oof[kind] = np.concatenate([run["held_out"] for run in runs])
        curve = np.mean([[h["val_rmse"] for h in f["history"]] for f in infos], axis=0)
        member_metrics[kind] = {
            "params": count_params(models[kind]),
            "oof_rmse": rmse(oof[kind], y_oof),
            "fold_val_rmse": [f["val_rmse"] for f in infos],
            "mean_fold_val_rmse_by_epoch": curve.tolist(),
            "history": [f["history"] for f in infos],
            "train_seconds": sum(f["train_seconds"] for f in infos),
        }
    weighting = choose_weights(oof, y_oof)
    hparams = {k: {**member_hparams(k, cfg), "replicas": cfg.folds} for k in models}
    ens = _calibrated_ensemble(
        models, weighting["weights"], scalers, cfg, hparams, oof, y_oof, "absolute"
    )
    config = asdict(cfg)
    config["models"] = list(cfg.models)
    ens.metrics = {
        "config": config,
        "engines": {"folds": [len(f) for f in folds], "total": len(fleet)},
        "windows": {
            "train": sum(len(y) for _, y in first["train"]),
            "out_of_fold": len(y_oof),
        },
        "members": member_metrics,
        "weighting": weighting,
        "validation_rmse": {
            **{k: rmse(v, y_oof) for k, v in oof.items()},
            "ensemble": rmse(ens.combine(oof)[0], y_oof),
        },
        "validation_note": "out-of-fold predictions: each engine scored by the fold model "
        "that did not train on it (full windows only)",
        "conformal_mode": "absolute",
        "train_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "jobs": jobs,
    }
    return ens
