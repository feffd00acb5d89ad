import json
from pathlib import Path

import numpy as np
import pytest

from streamapp.rul.training.data import (
    Fleet,
    Scaler,
    build_window,
    cmapss_inputs,
    fleet_windows,
    fold_engines,
    last_windows,
    load_cmapss,
    load_feature_records,
    pad_window,
    rul_labels,
    sequence_windows,
    smooth,
    split_engines,
)
from tests.rul.synthetic import write_cmapss


def _row(unit: int, cycle: int, s2: float) -> str:
    values = [unit, cycle, 0.0, 0.0, 100.0, 518.67, s2] + [1.0] * 19
    return " ".join(str(v) for v in values)


def test_cmapss_labels_hand_computed(tmp_path: Path) -> None:
    rows = [_row(1, c, 600 + c) for c in (1, 2, 3, 4)] + [_row(2, c, 700) for c in (1, 2)]
    (tmp_path / "train_FD009.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "test_FD009.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "RUL_FD009.txt").write_text("10\n3\n")
    train = load_cmapss(tmp_path, "fd009")
    assert train.units == ["1", "2"]
    assert train.feature_names[:5] == ["op1_mean", "op2_mean", "op3_mean", "s1_mean", "s2_mean"]
    assert train.rul[0].tolist() == [3, 2, 1, 0]
    assert train.series[0][:, 4].tolist() == [601, 602, 603, 604]
    test = load_cmapss(tmp_path, "FD009", "test")
    assert test.rul[0].tolist() == [13, 12, 11, 10]
    assert test.rul[1].tolist() == [4, 3]


def test_piecewise_linear_cap() -> None:
    assert rul_labels(np.array([300.0, 126, 125, 124, 0]), 125).tolist() == [125, 125, 125, 124, 0]


def test_padding_repeats_first_row() -> None:
    seq = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert pad_window(seq, 4).tolist() == [[1, 2], [1, 2], [1, 2], [3, 4]]
    long = np.arange(10.0).reshape(5, 2)
    assert pad_window(long, 2).tolist() == [[6, 7], [8, 9]]


def test_training_windows_equal_serving_padding() -> None:
    seq = np.random.default_rng(0).normal(size=(9, 3))
    windows = sequence_windows(seq, 4)
    assert windows.shape == (9, 4, 3)
    for t in range(9):
        assert np.array_equal(windows[t], pad_window(seq[: t + 1], 4))
        records = [{"a": r[0], "b": r[1], "c": r[2]} for r in seq[: t + 1]]
        assert np.array_equal(build_window(records, ["a", "b", "c"], 4), windows[t])


def test_build_window_reports_missing_features() -> None:
    with pytest.raises(ValueError, match="missing features: b"):
        build_window([{"a": 1.0}], ["a", "b"], 3)


def test_fleet_windows_and_last_windows() -> None:
    fleet = Fleet(["x"], ["u1", "u2"], [np.arange(5.0)[:, None], np.arange(2.0)[:, None]],
                  [np.arange(4.0, -1, -1), np.array([7.0, 6.0])])  # fmt: skip
    x, y, e = fleet_windows(fleet, 3)
    assert x.shape == (7, 3, 1)
    assert y.tolist() == [4, 3, 2, 1, 0, 7, 6]
    assert e.tolist() == [0] * 5 + [1] * 2
    x_full, y_full, _ = fleet_windows(fleet, 3, min_length=3)
    assert y_full.tolist() == [2, 1, 0]
    assert x_full[0, :, 0].tolist() == [0, 1, 2]
    last, true = last_windows(fleet, 3)
    assert last[:, :, 0].tolist() == [[2, 3, 4], [0, 0, 1]]
    assert true.tolist() == [0, 6]


def test_scaler_uses_given_rows_only() -> None:
    fit = Fleet(["a", "b"], ["1"], [np.array([[1.0, 10.0], [3.0, 10.0]])], [np.array([1.0, 0])])
    scaler = Scaler.fit(fit, ["a", "b"])
    assert scaler.mean.tolist() == [[2.0, 10.0]]
    assert scaler.std.tolist() == [[1.0, 1.0]]  # constant b: std guarded to 1
    out = scaler.transform(np.array([[5.0, 12.0]]))
    assert out.dtype == np.float32
    assert out.tolist() == [[3.0, 2.0]]
    assert Scaler.from_dict(json.loads(json.dumps(scaler.to_dict()))).transform(
        np.array([[5.0, 12.0]])
    ).tolist() == [[3.0, 2.0]]


def test_minmax_scaler_maps_training_range_onto_minus_one_one() -> None:
    rows = np.array([[1.0, 10.0], [3.0, 10.0], [2.5, 10.0]])
    fit = Fleet(["a", "b"], ["1"], [rows], [np.array([2.0, 1.0, 0.0])])
    scaler = Scaler.fit(fit, ["a", "b"], scaling="minmax")
    assert scaler.transform(rows).tolist() == [[-1.0, 0.0], [1.0, 0.0], [0.5, 0.0]]
    assert scaler.transform(np.array([[5.0, 12.0]])).tolist() == [[3.0, 2.0]]
    with pytest.raises(ValueError, match="scaling must be one of"):
        Scaler.fit(fit, ["a"], scaling="robust")


def test_single_condition_has_no_condition_features(tmp_path: Path) -> None:
    fleet = load_cmapss(write_cmapss(tmp_path), "FD001")
    inputs, conditions = cmapss_inputs(fleet)
    assert len(inputs) == 14 and inputs[0] == "s2_mean"
    assert conditions == []


def test_multi_condition_normalisation(tmp_path: Path) -> None:
    fleet = load_cmapss(write_cmapss(tmp_path, "FD002", multi_condition=True), "FD002")
    inputs, conditions = cmapss_inputs(fleet)
    assert conditions == ["op1_mean", "op2_mean", "op3_mean"]
    scaler = Scaler.fit(fleet, inputs, conditions)
    assert len(scaler.centroids) == 3
    assert scaler.feature_names == conditions + inputs
    rows = np.concatenate(fleet.columns(scaler.feature_names).series)
    cond = scaler.conditions(rows)
    z = scaler.transform(rows)
    for c in range(3):
        assert np.allclose(z[cond == c].mean(axis=0), 0, atol=1e-5)
        assert np.allclose(z[cond == c].std(axis=0), 1, atol=1e-3)
    # Without per-condition statistics the condition offsets dominate the signal.
    plain = Scaler.fit(fleet, inputs).transform(rows[:, 3:])
    assert np.abs(plain[cond == 2].mean(axis=0)).max() > 0.5


def test_split_engines_disjoint() -> None:
    fit, val, cal = split_engines(100, 0.1, 0.15, seed=3)
    assert (len(fit), len(val), len(cal)) == (75, 10, 15)
    assert not set(fit) & set(val) and not set(fit) & set(cal) and not set(val) & set(cal)
    assert sorted([*fit, *val, *cal]) == list(range(100))
    assert np.array_equal(split_engines(100, 0.1, 0.15, seed=3)[1], val)
    with pytest.raises(ValueError, match="too few"):
        split_engines(2, 0.1, 0.15, seed=0)


def test_fold_engines_partition() -> None:
    folds = fold_engines(23, 5, seed=1)
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert all(np.array_equal(a, b) for a, b in zip(folds, fold_engines(23, 5, 1), strict=True))
    with pytest.raises(ValueError, match="folds"):
        fold_engines(3, 5, seed=0)


def test_feature_records_loader(tmp_path: Path) -> None:
    def rec(asset: str, end: int, sensor: str, feats: dict[str, float]) -> str:
        window = {"end": f"2024-01-01T00:{end:02d}"}
        return json.dumps(
            {"asset_id": asset, "sensor_id": sensor, "features": feats,
             "timestamp": f"t{end:03d}", "window": window}
        )  # fmt: skip

    lines = [
        rec("B", 2, "S1", {"rms": 2.0, "kurt": 1.0}),
        rec("B", 1, "S1", {"rms": 1.0, "kurt": 1.0}),
        rec("B", 3, "S1", {"rms": 3.0, "kurt": 1.5}),
        rec("B", 3, "S1", {"rms": 3.0, "kurt": 1.5}),  # re-emitted window
        rec("A", 1, "S1", {"rms": 5.0, "kurt": 0.0}),
        rec("A", 1, "S2", {"temp": 9.0}),  # another sensor, same window: merged
        rec("A", 2, "S1", {"rms": 6.0, "kurt": 0.0, "temp": 8.0}),
    ]
    path = tmp_path / "features.jsonl"
    path.write_text("\n".join(lines) + "\n")
    fleet = load_feature_records(path, ["rms", "kurt"])
    assert fleet.units == ["A", "B"]
    assert fleet.series[1].tolist() == [[1, 1], [2, 1], [3, 1.5]]
    assert fleet.rul[1].tolist() == [2, 1, 0]
    assert fleet.rul[0].tolist() == [1, 0]
    assert load_feature_records(path).feature_names == ["kurt", "rms"]
    with pytest.raises(ValueError, match="asset B: missing feature temp"):
        load_feature_records(path, ["rms", "temp"])


def test_smoothing_is_exponential_along_time_from_each_windows_first_row() -> None:
    windows = np.array([[[1.0, 0.0], [3.0, 2.0], [3.0, 4.0]]])  # (1 window, 3 rows, 2 features)
    out = smooth(windows, 0.5)
    assert np.allclose(out[0], [[1.0, 0.0], [2.0, 1.0], [2.5, 2.5]])
    assert np.array_equal(windows[0, 1], [3.0, 2.0])  # the input is not changed
    assert smooth(windows, 0.0) is windows
    # A window's smoothed rows depend on it alone, not on rows before it.
    longer = np.concatenate([np.full((1, 4, 2), 9.0), windows], axis=1)
    assert np.allclose(smooth(longer[:, -3:], 0.5), out)
    with pytest.raises(ValueError, match="smoothing"):
        smooth(windows, 1.5)
