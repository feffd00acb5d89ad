import math

import numpy as np
import pytest

from streamapp.rul.training.conformal import Conformal, conformal_quantile


def test_quantile_rank() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(np.arange(1.0, 5.0), 0.9) == math.inf
    with pytest.raises(ValueError):
        conformal_quantile(scores, 1.0)


@pytest.mark.parametrize("mode", ["absolute", "normalized"])
def test_coverage_within_finite_sample_bound(mode: str) -> None:
    """Mean coverage over many splits lies in [level, level + 1/(n+1)] up to sampling error."""
    rng = np.random.default_rng(7)
    n, trials, n_test, level = 39, 400, 50, 0.9
    covered = []
    for _ in range(trials):
        spread = rng.uniform(0.5, 3.0, n + n_test)
        true = rng.normal(0, 1, n + n_test) * spread  # heteroscedastic: noise follows spread
        pred = np.zeros_like(true)
        conf = Conformal.calibrate(pred[:n], spread[:n], true[:n], mode, level)
        half = conf.half_width(spread[n:])
        covered.append(np.mean(np.abs(true[n:] - pred[n:]) <= half))
    mean = float(np.mean(covered))
    tol = 3 * np.std(covered) / math.sqrt(trials)
    assert level - tol <= mean <= level + 1 / (n + 1) + tol


def test_normalized_is_narrower_where_models_agree() -> None:
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.5, 3.0, 500)
    true = rng.normal(0, 1, 500) * spread
    conf = Conformal.calibrate(np.zeros(500), spread, true, "normalized", 0.9)
    assert conf.half_width(np.array([0.5]))[0] < conf.half_width(np.array([3.0]))[0]
    again = Conformal.from_dict(conf.to_dict())
    assert np.array_equal(again.half_width(spread), conf.half_width(spread))
    assert again.half_width(spread, 0.5).mean() < again.half_width(spread).mean()
