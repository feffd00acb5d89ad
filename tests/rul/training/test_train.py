from pathlib import Path

import numpy as np
import pytest

from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.training.artifacts import load_ensemble, save_ensemble
from streamapp.rul.training.data import (
    cmapss_inputs,
    fleet_windows,
    fold_engines,
    load_cmapss,
    rul_labels,
)
from streamapp.rul.training.scoring import rmse
from streamapp.rul.training.train import (
    TrainConfig,
    choose_weights,
    member_view,
    replica_seed,
    train_ensemble,
)
from tests.rul.synthetic import write_cmapss


@pytest.fixture(scope="module")
def cross_fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ensemble, TrainConfig, Path]:
    data = write_cmapss(tmp_path_factory.mktemp("data"), n_train=9)
    fleet = load_cmapss(data, "FD001")
    inputs, conditions = cmapss_inputs(fleet)
    cfg = TrainConfig(models=("gru", "cnn"), epochs=2, window=10, folds=3, batch_size=64)
    return train_ensemble(fleet, inputs, conditions, cfg), cfg, data


def test_cross_fit_members_average_one_model_per_fold(
    cross_fitted: tuple[Ensemble, TrainConfig, Path],
) -> None:
    ens, cfg, _ = cross_fitted
    assert set(ens.models) == {"gru", "cnn"}
    for name, model in ens.models.items():
        assert len(model.nets) == cfg.folds
        assert ens.hparams[name]["replicas"] == cfg.folds
    assert ens.hparams["cnn"]["window"] == member_view("cnn", cfg)[0] == 2 * cfg.window
    assert ens.metrics["engines"] == {"folds": [3, 3, 3], "total": 9}
    assert len(ens.metrics["members"]["gru"]["mean_fold_val_rmse_by_epoch"]) == cfg.epochs


def test_cross_fit_calibrates_on_out_of_fold_predictions(
    cross_fitted: tuple[Ensemble, TrainConfig, Path],
) -> None:
    """Each engine is scored by the fold model that never trained on it, and only by that one.

    Tolerances allow float32 rounding (torch's thread count may differ from training time)."""
    ens, cfg, data = cross_fitted
    fleet = load_cmapss(data, "FD001").columns(ens.feature_names)
    scores, truth = {n: [] for n in ens.models}, []
    for k, fold in enumerate(fold_engines(len(fleet), cfg.folds, cfg.seed)):
        x, y, _ = fleet_windows(fleet.subset(fold), ens.window, cfg.window)
        truth.append(rul_labels(y, cfg.cap))
        for name, model in ens.models.items():
            single = Ensemble(
                "", {name: model.nets[k]}, {name: 1.0}, ens.scaler, ens.window, cfg.cap,
                ens.conformal, inputs={name: ens.input_of(name)},
            )  # fmt: skip
            scores[name].append(single.member_predictions(x)[name])
    oof = {n: np.concatenate(s) for n, s in scores.items()}
    true = np.concatenate(truth)
    for name in ens.models:
        assert ens.metrics["validation_rmse"][name] == pytest.approx(
            rmse(oof[name], true), rel=1e-4
        )
    assert choose_weights(oof, true)["weights"] == pytest.approx(ens.weights, rel=1e-4)
    pred, _ = ens.combine(oof)
    assert np.allclose(ens.conformal.scores, np.sort(np.abs(true - pred)), atol=1e-3)
    assert len(ens.member_conformal["cnn"].scores) == len(true)


def test_cross_fit_roundtrip_and_determinism(
    cross_fitted: tuple[Ensemble, TrainConfig, Path], tmp_path: Path
) -> None:
    ens, cfg, data = cross_fitted
    loaded = load_ensemble(save_ensemble(ens, tmp_path, version="cv"))
    test = load_cmapss(data, "FD001", "test").columns(ens.feature_names)
    x = np.stack([s[-ens.window :] for s in test.series if len(s) >= ens.window])
    assert np.allclose(ens.predict(x).rul, loaded.predict(x).rul)
    fleet = load_cmapss(data, "FD001")
    again = train_ensemble(fleet, *cmapss_inputs(fleet), cfg)
    assert np.array_equal(again.predict(x).rul, ens.predict(x).rul)


def test_seed_replicas_trained_in_parallel_equal_sequential_training(tmp_path: Path) -> None:
    """Members x seeds are independent tasks: 2 processes give exactly the sequential result."""
    data = write_cmapss(tmp_path / "data", n_train=8)
    fleet = load_cmapss(data, "FD001")
    inputs, conditions = cmapss_inputs(fleet)
    cfg = TrainConfig(models=("gru", "cnn"), epochs=1, window=10, seeds=2, batch_size=64,
                      val_frac=0.2, cal_frac=0.3, scaling="minmax")  # fmt: skip
    lines: list[str] = []
    parallel = train_ensemble(fleet, inputs, conditions, cfg, lambda *a: lines.append(a[0]), 2)
    sequential = train_ensemble(fleet, inputs, conditions, cfg, jobs=1)
    assert {"gru seed 1/2", "gru seed 2/2", "cnn refit seed 2/2"} <= set(lines)
    for name, model in parallel.models.items():
        assert len(model.nets) == 2 and parallel.hparams[name]["replicas"] == 2
        assert parallel.metrics["members"][name]["seeds"] == [
            replica_seed(cfg.seed, name, r) for r in range(2)
        ]
    test = load_cmapss(data, "FD001", "test").columns(parallel.feature_names)
    x = np.stack([s[-parallel.window :] for s in test.series if len(s) >= parallel.window])
    assert np.array_equal(parallel.predict(x).rul, sequential.predict(x).rul)
    assert parallel.metrics["validation_rmse"] == sequential.metrics["validation_rmse"]
    loaded = load_ensemble(save_ensemble(parallel, tmp_path / "models", version="seeds"))
    assert np.array_equal(loaded.predict(x).rul, parallel.predict(x).rul)
