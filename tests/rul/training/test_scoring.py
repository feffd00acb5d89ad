import math

import numpy as np
import pytest

from streamapp.rul.training.scoring import coverage, phm08_score, rmse


def test_phm08_hand_computed() -> None:
    # d = -13 (early): e^1 - 1; d = +10 (late): e^1 - 1; d = 0: 0; d = +20: e^2 - 1.
    pred = np.array([87.0, 60.0, 5.0, 40.0])
    true = np.array([100.0, 50.0, 5.0, 20.0])
    assert phm08_score(pred, true) == pytest.approx(2 * (math.e - 1) + math.e**2 - 1)


def test_phm08_penalises_late_more() -> None:
    assert phm08_score(np.array([15.0]), np.array([10.0])) > phm08_score(
        np.array([5.0]), np.array([10.0])
    )


def test_rmse_and_coverage() -> None:
    assert rmse(np.array([1.0, 5.0]), np.array([4.0, 1.0])) == pytest.approx(math.sqrt(12.5))
    assert coverage(np.array([0, 0, 0]), np.array([1, 3, 3]), np.array([1, 3, 3.5])) == 2 / 3
