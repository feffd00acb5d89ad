"""Tiny synthetic C-MAPSS-format data: sensors drift with wear so that RUL is learnable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamapp.rul.training.data import CMAPSS_COLUMNS

CONDITIONS = np.array([[0.0, 0.0, 100.0], [20.0, 0.7, 100.0], [42.0, 0.84, 60.0]])


def synthetic_units(
    n_units: int, seed: int, multi_condition: bool = False, min_life: int = 25, max_life: int = 60
) -> list[np.ndarray]:
    """Run-to-failure tables (T, 26) in C-MAPSS column order, one per unit."""
    rng = np.random.default_rng(seed)
    n_sensors = len(CMAPSS_COLUMNS) - 5
    base = rng.uniform(10, 100, n_sensors)
    slope = rng.uniform(-1, 1, n_sensors) * base * 0.05
    slope[[0, 4, 5, 9, 15, 17, 18]] = 0.0  # s1, s5, s6, s10, s16, s18, s19 stay flat
    units = []
    for unit in range(1, n_units + 1):
        life = int(rng.integers(min_life, max_life))
        cycles = np.arange(1, life + 1)
        wear = (cycles / life) ** 2
        if multi_condition:
            ops = CONDITIONS[rng.integers(0, len(CONDITIONS), life)]
        else:
            ops = np.tile(CONDITIONS[0], (life, 1))
        ops = ops + rng.normal(0, 1e-3, ops.shape)
        offset = ops[:, :1] * 0.5 * (slope != 0)  # conditions shift the informative sensors
        sensors = base + wear[:, None] * slope + offset + rng.normal(0, 0.01, (life, n_sensors))
        units.append(np.column_stack([np.full(life, unit), cycles, ops, sensors]))
    return units


def write_cmapss(
    directory: Path, subset: str = "FD001", n_train: int = 12, n_test: int = 6, seed: int = 0,
    multi_condition: bool = False,
) -> Path:  # fmt: skip
    """Write train_/test_/RUL_ files; test units are cut at random points before failure."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    train = synthetic_units(n_train, seed, multi_condition)
    test_full = synthetic_units(n_test, seed + 2, multi_condition)
    cut = [t[: int(rng.integers(5, len(t) - 1))] for t in test_full]
    rul = [len(full) - len(c) for full, c in zip(test_full, cut, strict=True)]
    np.savetxt(directory / f"train_{subset}.txt", np.concatenate(train), fmt="%.5f")
    np.savetxt(directory / f"test_{subset}.txt", np.concatenate(cut), fmt="%.5f")
    np.savetxt(directory / f"RUL_{subset}.txt", np.asarray(rul), fmt="%d")
    return directory
