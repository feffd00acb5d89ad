import json
import time
from pathlib import Path

import click
import numpy as np
from click.testing import CliRunner

from streamapp.cli.rul import bench_inference, evaluate, models, screen, train
from streamapp.rul.training.artifacts import load_active
from streamapp.rul.training.data import INFORMATIVE_SENSORS, load_cmapss
from streamapp.rul.training.train import TrainConfig
from tests.rul.synthetic import write_cmapss


def _cli() -> click.Group:
    group = click.Group("streamapp")
    for command in (train, evaluate, models, screen):
        group.add_command(command)
    bench = click.Group("bench")
    bench.add_command(bench_inference)
    group.add_command(bench)
    return group


def test_train_evaluate_smoke(tmp_path: Path) -> None:
    start = time.perf_counter()
    data = write_cmapss(tmp_path / "data")
    out = tmp_path / "models"
    runner = CliRunner()
    cli = _cli()
    result = runner.invoke(
        cli,
        ["train", "--data", str(data), "--subset", "FD001", "--epochs", "2", "--window", "10",
         "--out", str(out), "--seed", "1", "--threads", "1", "--jobs", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "epoch   2/2" in result.output
    version = (out / "turbofan" / "ACTIVE").read_text().strip()
    assert version.startswith("fd001-")

    result = runner.invoke(
        cli,
        ["evaluate", "--data", str(data), "--subset", "FD001", "--models-dir", str(out),
         "--json", "--report", str(tmp_path / "report")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model_version"] == version
    assert "capped at 125" in report["protocol"]
    assert set(report["models"]) == {*TrainConfig.models, "ensemble"}
    for row in report["models"].values():
        assert set(row) == {"rmse", "score", "coverage", "mean_width"}
        assert 0 <= row["coverage"] <= 1
    for name in ("report.md", "pred_vs_true.png", "error_hist.png", "engine_life.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    card = (tmp_path / "report" / "report.md").read_text()
    for heading in ("## Model card", "### Data", "### Recipe", "### What decided each choice"):
        assert heading in card
    assert "| epochs per member | early stopping on the validation engines |" in card

    listing = runner.invoke(cli, ["models", "list", "--models-dir", str(out)])
    assert listing.output.startswith("turbofan:\n") and f"* {version}" in listing.output
    refused = runner.invoke(cli, ["models", "activate", "missing", "--models-dir", str(out)])
    assert refused.exit_code != 0 and "no version missing" in refused.output
    again = runner.invoke(cli, ["models", "activate", version, "--models-dir", str(out)])
    assert again.exit_code == 0 and f"active model of turbofan: {version}" in again.output
    assert time.perf_counter() - start < 60


def test_bench_inference_json(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data", n_train=8)
    out = tmp_path / "models"
    runner = CliRunner()
    cli = _cli()
    args = ["train", "--data", str(data), "--epochs", "1", "--window", "10", "--out", str(out),
            "--models", "tcn", "--threads", "1"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, ["bench", "inference", "--models-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    bench = json.loads(result.output)
    assert set(bench["params"]) == {"tcn", "ensemble"}
    assert set(bench["predictions_per_s"]) == {"1", "64", "512"}
    assert bench["predictions_per_s"]["64"]["ensemble"] > 0


def test_train_on_feature_records(tmp_path: Path) -> None:
    """Users' own fleet: extracted-features JSON lines, last record of each asset = failure."""
    fleet = load_cmapss(write_cmapss(tmp_path / "data", n_train=8), "FD001")
    lines = []
    for unit, series in zip(fleet.units, fleet.series, strict=True):
        for step, row in enumerate(series):
            features = dict(zip(fleet.feature_names, row.tolist(), strict=True))
            window = {"start": f"{step:06d}", "end": f"{step + 1:06d}", "count": 1}
            lines.append(
                json.dumps({"asset_id": f"E{unit}", "features": features, "window": window})
            )
    export = tmp_path / "features.jsonl"
    export.write_text("\n".join(lines) + "\n")
    out = tmp_path / "models"
    args = ["train", "--format", "features", "--data", str(export), "--epochs", "1",
            "--window", "10", "--out", str(out), "--models", "gru", "--threads", "1"]  # fmt: skip
    unnamed = CliRunner().invoke(_cli(), args)
    assert unnamed.exit_code == 2 and "--asset-class" in unnamed.output
    result = CliRunner().invoke(_cli(), [*args, "--asset-class", "rotating"])
    assert result.exit_code == 0, result.output
    ens = load_active(out / "rotating")
    assert ens.metrics["asset_class"] == "rotating"
    assert ens.version.startswith("features-")
    assert ens.window == 10
    assert {f"{s}_mean" for s in INFORMATIVE_SENSORS} <= set(ens.feature_names)
    assert ens.metrics["data"]["format"] == "features"
    chosen = [*args, "--asset-class", "rotating", "--features", "s2_mean,s3_mean"]
    picked = CliRunner().invoke(_cli(), chosen)
    assert picked.exit_code == 0, picked.output
    assert load_active(out / "rotating").feature_names == ["s2_mean", "s3_mean"]
    unknown = CliRunner().invoke(_cli(), [*chosen[:-1], "s2_mean,nope"])
    assert unknown.exit_code == 1 and "missing feature nope" in unknown.output


def test_train_refuses_seed_replicas_with_cross_fitting(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data", n_train=3)
    result = CliRunner().invoke(
        _cli(),
        ["train", "--data", str(data), "--folds", "3", "--seeds", "2",
         "--out", str(tmp_path / "models")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "use --seeds with the split protocol (--folds 0)" in result.output
    assert not (tmp_path / "models").exists()


def test_a_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["train", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'train_FD001.txt'} not found" in result.output


def test_train_cross_fits_from_the_command_line(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data", n_train=6)
    out = tmp_path / "models"
    result = CliRunner().invoke(
        _cli(),
        ["train", "--data", str(data), "--models", "gru", "--epochs", "1", "--window", "10",
         "--folds", "2", "--out", str(out), "--threads", "1", "--jobs", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2-fold cross-fitting" in result.output
    ens = load_active(out / "turbofan")
    assert ens.hparams["gru"]["replicas"] == 2
    assert ens.metrics["engines"]["total"] == 6


def test_screen_scores_candidates_on_the_same_rows_and_combines_them(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data")
    out = tmp_path / "screening"
    runner = CliRunner()
    cli = _cli()
    result = runner.invoke(
        cli,
        ["screen", "--data", str(data), "--candidate", "cnn:8:zscore", "--candidate",
         "gru:12:minmax:0.3", "--candidate", "cnn:8:zscore:0:2", "--folds", "2", "--epochs", "1",
         "--jobs", "1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    names = [line["name"] for line in lines]
    assert names == ["cnn-w8-zscore-s0", "gru-w12-minmax-s0.3", "cnn-w8-zscore-s0-r2"]
    # Two seeds per fold, averaged: not the single network's predictions.
    single, pair = (np.load(out / f"{n}.npz")["pred"] for n in (names[0], names[2]))
    assert single.shape == pair.shape and not np.array_equal(single, pair)
    assert all(line["oof_rmse"] > 0 and line["folds"] == 2 for line in lines)
    combined = runner.invoke(
        cli, ["screen", "--data", str(data), "--combine", "cnn-w8-zscore-s0,gru-w12-minmax-s0.3",
              "--out", str(out)],
    )  # fmt: skip
    assert combined.exit_code == 0, combined.output
    ensemble = json.loads(combined.stdout)
    assert ensemble["members"] == ["cnn-w8-zscore-s0", "gru-w12-minmax-s0.3"]
    assert ensemble["oof_rmse"] <= max(line["oof_rmse"] for line in lines)
    missing = runner.invoke(
        cli, ["screen", "--data", str(data), "--combine", "nope", "--out", str(out)]
    )
    assert missing.exit_code != 0 and "not screened" in missing.output
    bad = runner.invoke(cli, ["screen", "--data", str(data), "--candidate", "rnn:30"])
    assert bad.exit_code != 0 and "kind one of" in bad.output
