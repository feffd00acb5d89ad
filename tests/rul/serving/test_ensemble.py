from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from streamapp.rul.serving.ensemble import FORWARD_ROWS, SHAPE_STEP, shape_bucket
from streamapp.rul.training.artifacts import load_active
from streamapp.rul.training.data import load_cmapss, sequence_windows
from tests.conftest import ROOT
from tests.rul.synthetic import write_cmapss


def test_shape_bucket_bounds_the_batch_shapes() -> None:
    assert [shape_bucket(n) for n in (0, 1, 2, 3, 5, 33, 64)] == [0, 1, 2, 4, 8, 64, 64]
    assert [shape_bucket(n) for n in (65, 128, 129, 500, 512)] == [128, 128, 192, 512, 512]
    sizes = {shape_bucket(n) for n in range(1, 2049)}
    assert len(sizes) == 7 + 2048 // SHAPE_STEP - 1  # 1..64 in powers of two, then steps
    assert all(0 <= shape_bucket(n) - n < max(n, SHAPE_STEP) for n in range(1, 2049))


def test_a_large_batch_runs_in_slices_and_predicts_as_small_ones(tmp_path: Path) -> None:
    ensemble = load_active(ROOT / "models" / "turbofan")
    fleet = load_cmapss(write_cmapss(tmp_path), "FD001", "test").columns(ensemble.feature_names)
    windows = np.concatenate([sequence_windows(s, ensemble.window) for s in fleet.series])
    windows = np.resize(windows, (300, *windows.shape[1:]))
    seen: set[int] = set()
    for network in ensemble.models.values():
        network.register_forward_pre_hook(lambda _, args: seen.add(len(args[0])))
    whole = ensemble.predict(windows)
    assert seen == {FORWARD_ROWS, 320 - 2 * FORWARD_ROWS}  # 300 rows padded to 320
    parts = [ensemble.predict(windows[start : start + 50]) for start in range(0, 300, 50)]
    assert np.allclose(whole.rul, np.concatenate([part.rul for part in parts]))
    assert ensemble.predict(windows[:0]).rul.shape == (0,)


def test_pieces_run_in_threads_give_the_sequential_numbers(tmp_path: Path) -> None:
    ensemble = load_active(ROOT / "models" / "turbofan")
    fleet = load_cmapss(write_cmapss(tmp_path), "FD001", "test").columns(ensemble.feature_names)
    windows = np.concatenate([sequence_windows(s, ensemble.window) for s in fleet.series])
    windows = np.resize(windows, (300, *windows.shape[1:]))
    alone = ensemble.predict(windows)
    with ThreadPoolExecutor(2) as pool:
        threaded = ensemble.predict(windows, pool=pool)
    assert np.array_equal(alone.rul, threaded.rul)
    assert all(np.array_equal(alone.scores[k], threaded.scores[k]) for k in alone.scores)
