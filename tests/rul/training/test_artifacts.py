import json
from pathlib import Path

import numpy as np
import pytest

from streamapp.rul.serving.ensemble import Ensemble
from streamapp.rul.training.artifacts import (
    AmbiguousVersion,
    ArtifactError,
    InvalidVersion,
    UnknownVersion,
    activate,
    active_version,
    class_folder,
    class_of_version,
    list_versions,
    load_active,
    load_ensemble,
    model_classes,
    save_ensemble,
)
from streamapp.rul.training.data import cmapss_inputs, load_cmapss, sequence_windows
from streamapp.rul.training.train import TrainConfig, train_ensemble
from tests.rul.synthetic import write_cmapss


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ensemble, Path]:
    data = write_cmapss(tmp_path_factory.mktemp("data"))
    fleet = load_cmapss(data, "FD001")
    inputs, conditions = cmapss_inputs(fleet)
    cfg = TrainConfig(
        epochs=1, window=10, folds=0, val_frac=0.2, cal_frac=0.3, batch_size=64, smoothing=0.4
    )
    return train_ensemble(fleet, inputs, conditions, cfg), data


def test_save_load_roundtrip(trained: tuple[Ensemble, Path], tmp_path: Path) -> None:
    ens, data = trained
    path = save_ensemble(ens, tmp_path / "models", version="v1")
    loaded = load_ensemble(path)
    assert loaded.version == "v1"
    assert loaded.feature_names == ens.feature_names
    assert loaded.feature_names[0] == "s2_mean" and len(loaded.feature_names) == 14
    # The CNN reads twice the window, z-scored; the others the window, min-max scaled.
    assert loaded.window == 20
    for name in ens.models:
        view, saved = loaded.input_of(name), ens.input_of(name)
        assert view.window == saved.window == (20 if name == "cnn" else 10)
        assert view.smoothing == saved.smoothing == 0.4
        assert np.array_equal(view.scaler.mean, saved.scaler.mean)
    assert not np.array_equal(loaded.input_of("cnn").scaler.std, loaded.input_of("tcn").scaler.std)
    fleet = load_cmapss(data, "FD001", "test").columns(ens.feature_names)
    x = sequence_windows(fleet.series[0], ens.window)
    a, b = ens.predict(x), loaded.predict(x)
    assert np.allclose(a.rul, b.rul) and np.allclose(a.upper, b.upper)
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {f"{m}.pt" for m in ens.models} | {
        "ensemble.json", "conformal.json", "metrics.json"
    }  # fmt: skip
    assert list(ens.models) == list(TrainConfig.models)


def test_prediction_contract(trained: tuple[Ensemble, Path]) -> None:
    ens, _ = trained
    records = [{n: 100.0 + i for n in ens.feature_names} for i in range(3)]
    window = ens.build_window(records)
    assert window.shape == (ens.window, len(ens.feature_names))
    assert np.all(window[: ens.window - 2] == records[0][ens.feature_names[0]])
    pred = ens.predict(np.stack([window, window]))
    assert pred.rul.shape == (2,) and pred.level == 0.9
    assert np.all(pred.lower >= 0) and np.all(pred.upper >= pred.rul)
    assert np.allclose(pred.upper - pred.rul, pred.uncertainty)
    row = pred.row(0)
    assert set(row["model_scores"]) == set(TrainConfig.models)
    assert row["confidence_level"] == 0.9
    wider = ens.predict(np.stack([window]), level=0.99)
    assert wider.uncertainty[0] >= pred.uncertainty[0]
    with pytest.raises(ValueError, match="expected"):
        ens.predict(np.zeros((1, ens.window + 1, len(ens.feature_names))))


def test_padded_batches_predict_each_window_alone(trained: tuple[Ensemble, Path]) -> None:
    """A batch of 5 runs padded to 8 (`shape_bucket`): every window's prediction is the
    one it gets alone, and no padding row comes back."""
    ens, data = trained
    fleet = load_cmapss(data, "FD001", "test").columns(ens.feature_names)
    windows = sequence_windows(fleet.series[0], ens.window)[:5]
    batch = ens.predict(windows)
    assert batch.rul.shape == batch.upper.shape == (5,)
    assert all(scores.shape == (5,) for scores in batch.scores.values())
    alone = np.concatenate([ens.predict(windows[i : i + 1]).rul for i in range(5)])
    assert np.allclose(batch.rul, alone, atol=1e-4)
    assert ens.predict(windows[:0]).rul.shape == (0,)


def test_tampered_and_missing_files_refused(trained: tuple[Ensemble, Path], tmp_path: Path) -> None:
    ens, _ = trained
    root = tmp_path / "models"
    path = save_ensemble(ens, root, version="v1")
    weights = path / "gru.pt"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ArtifactError, match=r"gru\.pt: checksum mismatch"):
        load_ensemble(path)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        activate(root, "v1")
    assert active_version(root) is None
    weights.write_bytes(original)
    (path / "conformal.json").unlink()
    with pytest.raises(ArtifactError, match=r"conformal\.json listed in manifest\.json is missing"):
        load_ensemble(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        load_ensemble(path)


def test_versions_and_activation(trained: tuple[Ensemble, Path], tmp_path: Path) -> None:
    ens, _ = trained
    root = tmp_path / "models"
    with pytest.raises(ArtifactError, match="no active model"):
        load_active(root)
    save_ensemble(ens, root, version="a1")
    auto = save_ensemble(ens, root).name
    assert auto.startswith("rul-") or auto.startswith(str(ens.metrics.get("subset")))
    assert list_versions(root) == sorted(["a1", auto])
    activate(root, "a1")
    assert (root / "ACTIVE").read_text().strip() == "a1"
    assert load_active(root).version == "a1"
    with pytest.raises(ArtifactError, match="no version nope"):
        activate(root, "nope")
    with pytest.raises(ArtifactError, match="invalid version"):
        activate(root, "../a1")
    with pytest.raises(ArtifactError, match="already exists"):
        save_ensemble(ens, root, version="a1")


def test_version_names_are_checked_before_the_filesystem(tmp_path: Path) -> None:
    """A 5,000-character name once reached open() and failed with ENAMETOOLONG."""
    missing = tmp_path / "no-such-models-folder"
    for name in ("v" * 5000, "../a1", "a1\n", ".hidden", "a/b", "", "a\x00b"):
        with pytest.raises(InvalidVersion, match="invalid version name"):
            activate(missing, name)
    with pytest.raises(InvalidVersion, match="longer than 128 characters"):
        activate(missing, "v" * 129)
    with pytest.raises(UnknownVersion, match="no version " + "v" * 128):
        activate(missing, "v" * 128)


def test_each_class_has_its_folder_and_a_version_names_its_class(
    trained: tuple[Ensemble, Path], tmp_path: Path
) -> None:
    ens, _ = trained
    root = tmp_path / "models"
    save_ensemble(ens, class_folder(root, "turbofan"), version="t1")
    save_ensemble(ens, class_folder(root, "rotating"), version="r1")
    save_ensemble(ens, class_folder(root, "rotating"), version="both")
    save_ensemble(ens, class_folder(root, "turbofan"), version="both")
    (root / "empty").mkdir()
    assert model_classes(root) == ["rotating", "turbofan"]
    assert class_of_version(root, "r1") == "rotating"
    with pytest.raises(UnknownVersion):
        class_of_version(root, "nowhere")
    with pytest.raises(AmbiguousVersion, match="rotating, turbofan"):
        class_of_version(root, "both")
    with pytest.raises(InvalidVersion, match="asset class name"):
        class_folder(root, "../x")
