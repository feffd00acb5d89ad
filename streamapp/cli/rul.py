"""RUL commands: `train`, `evaluate`, `models list|activate`, `bench inference` and `bench rul`.

Exported click objects (registered by the lead in streamapp/cli/main.py): `train`,
`evaluate`, `models` (group), `bench_inference` and `bench_rul` (named `inference` and `rul`,
for the `bench` group).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import torch
from botocore.exceptions import BotoCoreError, ClientError

from streamapp.cli.options import run_async
from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.training import screening
from streamapp.rul.training.artifacts import (
    ArtifactError,
    activate,
    active_version,
    class_folder,
    class_of_version,
    list_versions,
    load_active,
    load_ensemble,
    model_classes,
    read_metrics,
    save_ensemble,
)
from streamapp.rul.training.data import (
    SCALINGS,
    cmapss_inputs,
    informative_features,
    load_cmapss,
    load_feature_records,
)
from streamapp.rul.training.evaluate import bench_inference as run_bench
from streamapp.rul.training.evaluate import evaluate as run_evaluate
from streamapp.rul.training.evaluate import format_table, write_report
from streamapp.rul.training.networks import MODEL_KINDS
from streamapp.rul.training.remote import ModelBucket, model_bucket
from streamapp.rul.training.train import TrainConfig, member_view, train_ensemble
from streamapp.settings import get_settings

#: The class of C-MAPSS engines, whose model `evaluate` and the benches run by default.
TURBOFAN = "turbofan"


def _models_dir(value: Path | None) -> Path:
    return value if value is not None else get_settings().models_dir


def _class_folder(models_dir: Path | None, asset_class: str) -> Path:
    try:
        return class_folder(_models_dir(models_dir), asset_class)
    except ArtifactError as err:
        raise click.BadParameter(str(err), param_hint="--asset-class") from None


def _load(model_dir: Path | None, models_dir: Path | None, asset_class: str = TURBOFAN) -> Ensemble:
    try:
        if model_dir is not None:
            return load_ensemble(model_dir)
        return load_active(_class_folder(models_dir, asset_class))
    except ArtifactError as err:
        raise click.ClickException(str(err)) from None


def asset_class_option(default: str | None, help_text: str) -> Any:
    return click.option(
        "--asset-class", "asset_class", default=default, show_default=default is not None,
        help=help_text,
    )  # fmt: skip


def _parse_models(value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if not kinds or unknown:
        raise click.BadParameter(f"choose from {', '.join(MODEL_KINDS)}", param_hint="--models")
    return kinds


@contextlib.contextmanager
def missing_data_is_an_error() -> Iterator[None]:
    """A data file that is not there, or a record it lacks (`ValueError` of the loaders,
    naming the file and line), is a one-line CLI error, not a traceback."""
    try:
        yield
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("train")
@click.option(
    "--data", "data", required=True, type=click.Path(exists=True, path_type=Path),
    help="C-MAPSS directory, or a JSON-lines file of extracted-features records.",
)  # fmt: skip
@click.option("--subset", default="FD001", show_default=True, help="C-MAPSS subset FD00x.")
@click.option(
    "--format", "fmt", type=click.Choice(["cmapss", "features"]), default="cmapss",
    show_default=True, help="features: run-to-failure extracted-features JSON lines.",
)  # fmt: skip
@click.option("--models", "models", default=",".join(TrainConfig.models), show_default=True)
@click.option("--epochs", default=TrainConfig.epochs, show_default=True, type=click.IntRange(1))
@click.option(
    "--folds", default=TrainConfig.folds, show_default=True, type=click.IntRange(0),
    help="Cross-fit K fold models per member on all assets (0 or 1: fit/validation/"
    "calibration split with early stopping and refit).",
)  # fmt: skip
@click.option(
    "--seeds", default=TrainConfig.seeds, show_default=True, type=click.IntRange(1),
    help="Networks per member, trained with different seeds and averaged (split only).",
)  # fmt: skip
@click.option(
    "--jobs", default=os.cpu_count() or 1, show_default="CPU count", type=click.IntRange(1),
    help="Networks trained at the same time, one process each (results do not depend on it).",
)  # fmt: skip
@click.option(
    "--scaling", type=click.Choice(SCALINGS), default=TrainConfig.scaling, show_default=True,
    help="Input normalisation per feature: z-score, or min-max onto [-1, 1] (training data); "
    "the CNN keeps its own z-score.",
)  # fmt: skip
@click.option(
    "--smoothing", default=TrainConfig.smoothing, show_default=True, type=click.FloatRange(0, 1),
    help="Exponential smoothing of each member's scaled window along time (alpha; 0: none).",
)  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Models directory.")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--cap", default=125.0, show_default=True, type=click.FloatRange(min=1))
@click.option(
    "--window", default=TrainConfig.window, show_default=True, type=click.IntRange(1),
    help="Rows of history each prediction reads (the CNN reads twice as many); validation "
    "scores the cycles with a full window.",
)  # fmt: skip
@click.option(
    "--level",
    default=0.9,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(1),
    help="torch threads per training process. 1 by default: with 2 threads on 2 busy shared "
    "cores, OpenMP's spin-waiting made training steps ~15x slower; results depend on it.",
)  # fmt: skip
@click.option("--activate/--no-activate", "make_active", default=True, show_default=True)
@click.option(
    "--features", "feature_list", default=None,
    help="With --format features: the model's inputs, comma-separated (default: every "
    "feature all records carry that varies).",
)  # fmt: skip
@asset_class_option(
    None,
    "The asset class the model serves; its versions go to <out>/<class>/ (default: "
    "turbofan for --format cmapss; required for --format features).",
)
def train(
    data: Path, subset: str, fmt: str, models: str, epochs: int, folds: int, seeds: int,
    jobs: int, scaling: str, smoothing: float, out: Path | None, seed: int, cap: float,
    window: int, level: float, threads: int, make_active: bool, feature_list: str | None,
    asset_class: str | None,
) -> None:  # fmt: skip
    """Train the RUL ensemble, calibrate its intervals, save a new model version."""
    if folds > 1 and seeds > 1:
        raise click.BadParameter(
            "use --seeds with the split protocol (--folds 0)", param_hint="--seeds"
        )
    if asset_class is None:
        if fmt == "features":
            raise click.BadParameter(
                "name the asset class the model serves (e.g. rotating)",
                param_hint="--asset-class",
            )
        asset_class = TURBOFAN
    folder = _class_folder(out, asset_class)
    chosen = [name.strip() for name in feature_list.split(",")] if feature_list else None
    if chosen is not None and (fmt != "features" or not all(chosen)):
        raise click.BadParameter(
            "a comma-separated list of feature names, with --format features",
            param_hint="--features",
        )
    torch.set_num_threads(threads)
    with missing_data_is_an_error():
        if fmt == "cmapss":
            fleet = load_cmapss(data, subset, "train")
            inputs, conditions = cmapss_inputs(fleet)
            name = subset.lower()
        else:
            fleet = load_feature_records(data, chosen)
            inputs, conditions = informative_features(fleet), []
            name = "features"
    cfg = TrainConfig(
        models=_parse_models(models), epochs=epochs, folds=folds, seeds=seeds, seed=seed,
        window=window, cap=cap, level=level, scaling=scaling, smoothing=smoothing,
    )  # fmt: skip
    click.echo(
        f"training {','.join(cfg.models)} on {len(fleet)} assets, {len(inputs)} features"
        f"{' (per-condition normalisation)' if conditions else ''}, inputs "
        f"{', '.join('{} {} {} smoothing {}'.format(k, *member_view(k, cfg)) for k in cfg.models)}"
        ", "
        f"cap {cap:g}, seed {seed}, {jobs} jobs x {threads} threads"
        f"{f', {folds}-fold cross-fitting' if folds > 1 else ''}"
        f"{f', {seeds} seeds per member' if seeds > 1 else ''}",
        err=True,
    )

    def progress(kind: str, epoch: int, total: int, tr: float, val: float, secs: float) -> None:
        shown = "(refit: none held out)" if math.isnan(val) else f"{val:6.2f}"
        click.echo(
            f"  {kind} epoch {epoch:3d}/{total}  train RMSE {tr:6.2f}  "
            f"val last-cycle RMSE {shown}  ({secs:.1f}s)",
            err=True,
        )

    start = time.perf_counter()
    ens = train_ensemble(fleet, inputs, conditions, cfg, progress, jobs)
    ens.metrics["subset"] = name
    ens.metrics["data"] = {"format": fmt, "subset": subset if fmt == "cmapss" else None}
    ens.metrics["asset_class"] = asset_class
    path = save_ensemble(ens, folder)
    if make_active:
        activate(folder, ens.version)
    bucket = model_bucket(get_settings())
    if bucket is not None:
        with storage_errors(bucket):
            run_async(bucket.upload(_models_dir(out), asset_class, ens.version))
            if make_active:
                run_async(bucket.set_active(asset_class, ens.version))
        click.echo(f"uploaded {asset_class}/{ens.version} to {bucket.url}", err=True)
    m = ens.metrics
    click.echo(
        f"saved {path} ({'active' if make_active else 'not activated'}) in "
        f"{time.perf_counter() - start:.0f}s; validation RMSE "
        + ", ".join(f"{k} {v:.2f}" for k, v in m["validation_rmse"].items())
        + f"; weights {m['weighting']['scheme']}; intervals {m['conformal_mode']}"
    )


@click.command("screen")
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--subset", default="FD001", show_default=True, help="C-MAPSS subset FD00x.")
@click.option(
    "--candidate", "candidates", multiple=True,
    help="kind:window[:scaling[:smoothing[:seeds]]] (e.g. gru:30:minmax:0.3, or "
    "cnn:60:zscore:0.3:3 for the average of 3 seeds); repeat for several.",
)  # fmt: skip
@click.option(
    "--combine", "ensembles", multiple=True,
    help="Comma-separated names of screened candidates: the ensemble's out-of-fold RMSE.",
)  # fmt: skip
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2))
@click.option("--epochs", default=TrainConfig.epochs, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--cap", default=125.0, show_default=True, type=click.FloatRange(min=1))
@click.option(
    "--jobs", default=os.cpu_count() or 1, show_default="CPU count", type=click.IntRange(1),
    help="Fold networks trained at the same time, one process each.",
)  # fmt: skip
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("screening"), show_default=True,
    help="Where each candidate's out-of-fold predictions are saved and read back.",
)  # fmt: skip
def screen(
    data: Path, subset: str, candidates: tuple[str, ...], ensembles: tuple[str, ...],
    folds: int, epochs: int, seed: int, cap: float, jobs: int, threads: int, out: Path,
) -> None:  # fmt: skip
    """Out-of-fold screening on the training engines only: one JSON line per candidate
    (cross-fitted, its predictions saved under --out) and per --combine ensemble."""
    try:
        parsed = [screening.Candidate.parse(text) for text in candidates]
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--candidate") from None
    for candidate in parsed:
        if candidate.kind not in MODEL_KINDS or candidate.scaling not in SCALINGS:
            raise click.BadParameter(
                f"{candidate.name}: kind one of {', '.join(MODEL_KINDS)}, scaling one of "
                f"{', '.join(SCALINGS)}",
                param_hint="--candidate",
            )
    if not parsed and not ensembles:
        raise click.UsageError("name at least one --candidate or --combine")
    torch.set_num_threads(threads)
    base = TrainConfig(folds=folds, epochs=epochs, seed=seed, cap=cap)
    if parsed:
        with missing_data_is_an_error():
            fleet = load_cmapss(data, subset, "train")
        inputs, conditions = cmapss_inputs(fleet)

    def progress(kind: str, epoch: int, total: int, tr: float, val: float, secs: float) -> None:
        click.echo(
            f"  {kind} epoch {epoch}/{total} held-out RMSE {val:.2f} ({secs:.1f}s)", err=True
        )

    for candidate in parsed:
        click.echo(f"screening {candidate.name} ({folds} folds x {epochs} epochs)", err=True)
        result = screening.screen(fleet, inputs, conditions, candidate, base, jobs=jobs,
                                  on_epoch=progress)  # fmt: skip
        screening.save(result, out)
        keep = ("name", "oof_rmse", "train_seconds", "folds", "epochs", "first_cycle")
        click.echo(json.dumps({k: result[k] for k in keep}))
    for names in ensembles:
        try:
            results = [screening.load(out, name.strip()) for name in names.split(",")]
        except FileNotFoundError as err:
            raise click.BadParameter(
                f"not screened: {err.filename}", param_hint="--combine"
            ) from None
        try:
            click.echo(json.dumps(screening.combine(results, cap)))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--combine") from None


@click.command("evaluate")
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--subset", default="FD001", show_default=True)
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="Default: ACTIVE.")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Report directory.")
@asset_class_option(TURBOFAN, "Whose active model to score (without --model-dir).")
def evaluate(
    data: Path, subset: str, model_dir: Path | None, models_dir: Path | None, as_json: bool,
    report: Path | None, asset_class: str,
) -> None:  # fmt: skip
    """Score a model version on a C-MAPSS test set (last cycle per engine, RUL capped)."""
    ens = _load(model_dir, models_dir, asset_class)
    with missing_data_is_an_error():
        test = load_cmapss(data, subset, "test")
    result = run_evaluate(ens, test, subset.upper())
    if report is not None:
        result["report"] = str(write_report(ens, test, result, report))
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "per_engine"}, indent=2))
        return
    click.echo(
        f"model {result['model_version']} on {result['subset']} test, {result['engines']} engines"
    )
    click.echo(f"protocol: {result['protocol']}")
    click.echo(format_table(result))
    if report is not None:
        click.echo(f"report: {result['report']}")


@click.group("models")
def models() -> None:
    """List and activate trained model versions."""


@models.command("list")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@asset_class_option(None, "Only this class (default: every class with models).")
def list_cmd(models_dir: Path | None, asset_class: str | None) -> None:
    """Versions per asset class; * marks each class's active one (with MODELS_URL, the
    bucket's, metrics from the local mirror where it holds the version)."""
    root = _models_dir(models_dir)
    bucket = model_bucket(get_settings())
    if bucket is not None:
        with storage_errors(bucket):
            layout = run_async(bucket.layout())
            actives = {name: run_async(bucket.active(name)) for name in layout}
        where = bucket.url
    else:
        layout = {name: list_versions(root / name) for name in model_classes(root)}
        actives = {name: active_version(root / name) for name in layout}
        where = str(root)
    classes = [asset_class] if asset_class is not None else list(layout)
    if not classes:
        click.echo(f"no model versions in {where}")
    for name in classes:
        folder = _class_folder(root, name)
        versions = layout.get(name, [])
        click.echo(f"{name}:" if versions else f"{name}: no model versions in {where}")
        for version in versions:
            metrics = read_metrics(folder, version) or {}
            try:
                val = metrics["validation_rmse"]["ensemble"]
                info = f"validation RMSE {val:.2f}, members {','.join(metrics['members'])}"
            except (KeyError, TypeError):
                info = "metrics not in the local folder" if bucket else "unreadable metrics"
            click.echo(f"{'*' if version == actives.get(name) else ' '} {version}  {info}")


@models.command("activate")
@click.argument("version")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@asset_class_option(None, "The class of VERSION (default: the one class that holds it).")
def activate_cmd(version: str, models_dir: Path | None, asset_class: str | None) -> None:
    """Verify VERSION's checksums and make it its class's active model (with MODELS_URL:
    in the bucket, which every worker follows)."""
    root = _models_dir(models_dir)
    bucket = model_bucket(get_settings())
    try:
        if bucket is not None:
            with storage_errors(bucket):
                name = asset_class or run_async(bucket.class_of_version(version))
                _class_folder(root, name)  # a class name, checked before any S3 key
                run_async(bucket.activate(root, name, version))
        else:
            name = asset_class if asset_class is not None else class_of_version(root, version)
            activate(_class_folder(root, name), version)
    except ArtifactError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"active model of {name}: {version}")


@models.command("upload")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
def upload_cmd(models_dir: Path | None) -> None:
    """Copy every local version the MODELS_URL bucket lacks, and each class's ACTIVE where
    the bucket has none yet (e.g. the shipped models, once, for docker-compose)."""
    bucket = model_bucket(get_settings())
    if bucket is None:
        raise click.ClickException("MODELS_URL is not set: nothing to upload to")
    with storage_errors(bucket):
        uploaded = run_async(bucket.publish(_models_dir(models_dir)))
    for name, version in uploaded:
        click.echo(f"uploaded {name}/{version} to {bucket.url}")
    click.echo(f"{len(uploaded)} version(s) uploaded; the bucket had the others")


@contextlib.contextmanager
def storage_errors(bucket: ModelBucket) -> Iterator[None]:
    """S3 failing is a one-line error naming the bucket, not a traceback."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise click.ClickException(f"{bucket.url}: {exc}") from None


@click.command("inference")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="Default: ACTIVE.")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option("--threads", type=click.IntRange(1), default=None, help="Default: TORCH_THREADS.")
@click.option("--json", "as_json", is_flag=True)
@asset_class_option(TURBOFAN, "Whose active model to time (without --model-dir).")
def bench_inference(
    model_dir: Path | None,
    models_dir: Path | None,
    threads: int | None,
    as_json: bool,
    asset_class: str,
) -> None:
    """Parameter counts and predictions/s per model and the ensemble at batch 1, 64, 512."""
    torch.set_num_threads(threads or get_settings().torch_threads)
    ens = _load(model_dir, models_dir, asset_class)
    result = {"model_version": ens.version, **run_bench(ens)}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"model {ens.version}, torch threads {result['torch_threads']}")
    click.echo("params: " + ", ".join(f"{k} {v}" for k, v in result["params"].items()))
    for batch, row in result["predictions_per_s"].items():
        click.echo(f"batch {batch:>4}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in row.items()))


@click.command("rul")
@click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Models directory whose turbofan/ACTIVE version runs (default: MODELS_DIR).",
)
@click.option(
    "--records", default=30_000, show_default=True, help="Backlog of the throughput phase."
)
@click.option("--rate", default=1000.0, show_default=True, help="Offered records/s for latency.")
@click.option("--seconds", default=20.0, show_default=True, help="Length of the latency phase.")
@click.option(
    "--ceiling", is_flag=True,
    help="Replace the model's members by one near-free network: the agent's own limit.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_rul(
    models_dir: Path | None, records: int, rate: float, seconds: float, ceiling: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Streaming predictions/s and feature-to-prediction latency on a private broker."""
    from streamapp.rul.serving.bench import bench_rul as run_bench_rul

    try:
        result = run_bench_rul(_models_dir(models_dir), records, rate, seconds, ceiling)
    except RuntimeError as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        click.echo(f"{key}: {value}")
