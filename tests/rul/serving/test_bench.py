from pathlib import Path

import numpy as np

from streamapp.rul.serving.bench import BENCH_CLASS, ceiling_models
from streamapp.rul.training.artifacts import activate, class_folder, load_active, save_ensemble
from streamapp.rul.training.data import cmapss_inputs, load_cmapss, sequence_windows
from streamapp.rul.training.networks import count_params
from streamapp.rul.training.train import TrainConfig, train_ensemble
from tests.rul.synthetic import write_cmapss


def test_the_ceiling_model_keeps_the_inputs_and_drops_the_members(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data")
    fleet = load_cmapss(data, "FD001")
    inputs, conditions = cmapss_inputs(fleet)
    cfg = TrainConfig(models=("gru", "cnn"), epochs=1, window=10, batch_size=64)
    ens = train_ensemble(fleet, inputs, conditions, cfg)
    folder = class_folder(tmp_path / "models", BENCH_CLASS)
    activate(folder, save_ensemble(ens, folder).name)

    ceiling = load_active(
        class_folder(ceiling_models(tmp_path / "models", tmp_path / "c"), BENCH_CLASS)
    )
    assert list(ceiling.models) == ["cnn"] and count_params(ceiling.models["cnn"]) < 100
    assert ceiling.feature_names == ens.feature_names and ceiling.window == ens.window
    assert ceiling.metrics["ceiling_of"] == ens.version
    x = sequence_windows(
        load_cmapss(data, "FD001", "test").columns(ens.feature_names).series[0], ens.window
    )
    pred = ceiling.predict(x)
    assert pred.rul.shape == (len(x),) and np.all(pred.upper >= pred.rul)
