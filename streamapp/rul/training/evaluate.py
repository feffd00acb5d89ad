"""Test-set evaluation (C-MAPSS protocol), the markdown/PNG report, and the inference bench."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.training.data import Fleet, last_windows, rul_labels, sequence_windows
from streamapp.rul.training.networks import count_params
from streamapp.rul.training.scoring import coverage, phm08_score, rmse

PROTOCOL = (
    "one prediction per test engine at its last observed cycle; "
    "true RUL from RUL_{subset}.txt capped at {cap:g} (the usual protocol)"
)

PUBLISHED_FD001 = [
    ("CNN (Babu 2016)", 18.45, 1287),
    ("Deep LSTM (Zheng 2017)", 16.14, 338),
    ("DCNN (Li 2018)", 12.61, 274),
    ("DATCN (2021)", 11.78, 229),
    ("DAST transformer (2021)", 11.43, 203),
    ("STAR (Sensors 2024)", 10.61, 169),
]


def _row(pred: np.ndarray, lo: np.ndarray, hi: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {
        "rmse": rmse(pred, true),
        "score": phm08_score(pred, true),
        "coverage": coverage(lo, hi, true),
        "mean_width": float(np.mean(hi - lo)),
    }


def evaluate(ens: Ensemble, test: Fleet, subset: str) -> dict[str, Any]:
    """Per-member and ensemble RMSE, PHM08 score, interval coverage and width at last cycle."""
    x, true_raw = last_windows(test.columns(ens.feature_names), ens.window)
    true = rul_labels(true_raw, ens.cap)
    pred = ens.predict(x)
    results: dict[str, Any] = {}
    for name, scores in pred.scores.items():
        half = ens.member_conformal[name].half_width(np.zeros_like(scores))
        results[name] = _row(scores, np.maximum(scores - half, 0), scores + half, true)
    results["ensemble"] = _row(pred.rul, pred.lower, pred.upper, true)
    return {
        "model_version": ens.version,
        "subset": subset,
        "engines": len(test),
        "protocol": PROTOCOL.format(subset=subset, cap=ens.cap),
        "level": pred.level,
        "conformal_mode": ens.conformal.mode,
        "weights": ens.weights,
        "models": results,
        "per_engine": {
            "unit": list(test.units),
            "true": true.tolist(),
            "pred": pred.rul.tolist(),
            "lower": pred.lower.tolist(),
            "upper": pred.upper.tolist(),
        },
    }


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of an `evaluate` result."""
    level = result["level"]
    lines = [
        f"| model | RMSE | PHM08 score | coverage ({level:.0%}) | mean width |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in result["models"].items():
        lines.append(
            f"| {name} | {m['rmse']:.2f} | {m['score']:.0f} | {m['coverage']:.2f} "
            f"| {m['mean_width']:.1f} |"
        )
    return "\n".join(lines)


def write_report(ens: Ensemble, test: Fleet, result: dict[str, Any], out: Path | str) -> Path:
    """report.md plus three PNG plots (matplotlib Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pe = {k: np.asarray(v) for k, v in result["per_engine"].items() if k != "unit"}
    order = np.argsort(pe["true"], kind="stable")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    idx = np.arange(len(order))
    ax.fill_between(
        idx, pe["lower"][order], pe["upper"][order], alpha=0.25,
        label=f"{result['level']:.0%} conformal interval",
    )  # fmt: skip
    ax.plot(idx, pe["true"][order], "k-", label="true RUL (capped)")
    ax.plot(idx, pe["pred"][order], "o", ms=3, label="ensemble prediction")
    ax.set(xlabel="test engine (sorted by true RUL)", ylabel="RUL (cycles)")
    ax.set_title(f"{result['subset']} test set, last cycle per engine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pred_vs_true.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(pe["pred"] - pe["true"], bins=25)
    ax.axvline(0, color="k", lw=1)
    ax.set(xlabel="predicted - true RUL (cycles)", ylabel="engines", title="Error histogram")
    fig.tight_layout()
    fig.savefig(out / "error_hist.png", dpi=110)
    plt.close(fig)

    engine = int(np.argmax([len(s) for s in test.series]))
    seq = test.columns(ens.feature_names).series[engine]
    life = ens.predict(sequence_windows(seq, ens.window))
    cycles = np.arange(1, len(seq) + 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(cycles, life.lower, life.upper, alpha=0.25, label="interval")
    ax.plot(cycles, rul_labels(test.rul[engine], ens.cap), "k-", label="true RUL (capped)")
    ax.plot(cycles, life.rul, label="ensemble")
    for name, scores in life.scores.items():
        ax.plot(cycles, scores, lw=0.7, alpha=0.7, label=name)
    ax.set(xlabel="cycle", ylabel="RUL (cycles)", title=f"Engine {test.units[engine]} over life")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "engine_life.png", dpi=110)
    plt.close(fig)

    md = [
        f"# RUL evaluation: {result['subset']}, model {result['model_version']}",
        "",
        f"Protocol: {result['protocol']}. Intervals: split conformal, "
        f"{result['conformal_mode']} scores, level {result['level']:.2f}.",
        "",
        format_table(result),
        "",
        "![predicted vs true](pred_vs_true.png)",
        "",
        "![error histogram](error_hist.png)",
        "",
        "![one engine over its life](engine_life.png)",
        "",
        *model_card(ens),
    ]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    return out / "report.md"


LIMITS = [
    "Trained and scored on one C-MAPSS subset: other operating conditions and fault modes "
    "need their own training run (multi-condition data is normalised per condition).",
    "RUL is capped (piecewise-linear target): beyond the cap the model says only "
    "'healthy', and the test protocol caps the truth the same way.",
    "Intervals cover at their level on average over engines like the calibration engines "
    "(split conformal), not for every single engine, and not under a shift in the fleet.",
    "A history shorter than a member's window is front-padded with its first row; the "
    "first predictions of a new asset are the least informed.",
]


def model_card(ens: Ensemble) -> list[str]:
    """The model card's Markdown lines: data, recipe, what decided each choice, limits."""
    m = ens.metrics
    cfg = m.get("config", {})
    members = m.get("members", {})
    lines = ["## Model card", "", "### Data", ""]
    subset = str(m.get("subset", "unknown")).upper()
    engines = m.get("engines", {})
    windows = m.get("windows", {})
    lines.append(
        f"Training data: {subset}, engines {json.dumps(engines)}, windows {json.dumps(windows)}. "
        "The test engines are scored by this report only."
    )
    lines += ["", "### Recipe", "", "| member | input | parameters | epochs | weight |"]
    lines.append("|---|---|---:|---|---:|")
    for name, model in ens.models.items():
        view = ens.input_of(name)
        scaling = cfg.get("inputs", {}).get(name, {}).get("scaling", cfg.get("scaling", "?"))
        epochs = members.get(name, {}).get("best_epoch", cfg.get("epochs", ""))
        lines.append(
            f"| {name} | {view.window} rows, {scaling}, smoothing {view.smoothing:g} "
            f"| {count_params(model):,} | {epochs} | {ens.weights[name]:.3f} |"
        )
    lines.append("")
    lines.append(
        f"Adam (lr {cfg.get('lr', '?')}), batch {cfg.get('batch_size', '?')}, MSE on RUL / "
        f"{ens.cap:g}, weight EMA {cfg.get('ema', '?')}, seed {cfg.get('seed', '?')}; "
        f"{m.get('train_seconds', 0):.0f} s of training on {m.get('jobs', '?')} processes."
    )
    weighting = m.get("weighting", {})
    modes = m.get("conformal_modes", {})
    lines += ["", "### What decided each choice", "", "| choice | decided by |", "|---|---|"]
    lines.append(
        "| members, windows, scaling, smoothing | the recipe's screening (docs/models.md, "
        '"How the recipe was chosen", says which data decided each) |'
    )
    lines.append("| epochs per member | early stopping on the validation engines |")
    if weighting:
        scored = ", ".join(f"{k} {v:.2f}" for k, v in weighting.get("val_rmse", {}).items())
        lines.append(f"| weights: {weighting.get('scheme')} | validation RMSE ({scored}) |")
    if modes:
        scored = ", ".join(
            f"{k} {v.get('val_interval_score', float('nan')):.1f}" for k, v in modes.items()
        )
        lines.append(
            f"| intervals: {ens.conformal.mode} | validation interval score ({scored}); "
            "calibrated on engines never trained on |"
        )
    lines += ["", "### Limits", "", *(f"* {limit}" for limit in LIMITS), ""]
    return lines


def bench_inference(
    ens: Ensemble, batch_sizes: tuple[int, ...] = (1, 64, 512), min_seconds: float = 0.5
) -> dict[str, Any]:
    """Parameter counts and predictions/s per member and for the ensemble (with intervals)."""
    rng = np.random.default_rng(0)
    features = len(ens.feature_names)
    # Inputs near the training data: the scaler's means plus unit Gaussian noise (raw units).
    base = np.zeros(features)
    base[[ens.feature_names.index(n) for n in ens.scaler.input_names]] = ens.scaler.mean[0]
    result: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "params": {k: count_params(m) for k, m in ens.models.items()},
        "predictions_per_s": {},
    }
    result["params"]["ensemble"] = sum(result["params"].values())

    def timed(fn: Any, batch: np.ndarray) -> float:
        fn(batch)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            fn(batch)
            n += len(batch)
        return n / (time.perf_counter() - start)

    for b in batch_sizes:
        batch = base + rng.normal(size=(b, ens.window, features))
        tensors = ens.member_tensors(batch)
        row = {}
        for name, model in ens.models.items():
            x = tensors[name]

            def run(_: np.ndarray, model: torch.nn.Module = model, x: torch.Tensor = x) -> None:
                with torch.inference_mode():
                    model(x)

            row[name] = timed(run, batch)
        row["ensemble"] = timed(ens.predict, batch)
        result["predictions_per_s"][str(b)] = row
    return result
