import math

import numpy as np
import pytest

from streamapp.rul.training.conformal import BINS, MODES, Conformal, conformal_quantile
from streamapp.rul.training.scoring import interval_score


def test_quantile_rank() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(np.arange(1.0, 5.0), 0.9) == math.inf
    with pytest.raises(ValueError):
        conformal_quantile(scores, 1.0)


@pytest.mark.parametrize("mode", MODES)
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
        half = conf.half_width(spread[n:], pred=pred[n:])
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


def test_binned_intervals_follow_the_predicted_rul() -> None:
    """Errors that grow with the prediction: each band gets its own width, and covers."""
    rng = np.random.default_rng(3)
    pred = rng.uniform(0, 125, 4000)
    true = pred + rng.normal(0, 1, 4000) * (2 + pred / 5)
    conf = Conformal.calibrate(pred[:2000], np.zeros(2000), true[:2000], "binned", 0.9)
    assert len(conf.edges) == BINS - 1 and len(conf.bands) == BINS
    half = conf.half_width(np.zeros(2000), pred=pred[2000:])
    assert half[pred[2000:] < 20].max() < half[pred[2000:] > 110].min()
    band = conf.band_of(pred[2000:])
    for b in range(BINS):
        inside = np.abs(true[2000:] - pred[2000:])[band == b] <= half[band == b]
        assert 0.85 <= inside.mean() <= 0.95
    absolute = Conformal.calibrate(pred[:2000], np.zeros(2000), true[:2000], "absolute", 0.9)
    flat = absolute.half_width(np.zeros(2000))
    score = {
        name: interval_score(pred[2000:] - h, pred[2000:] + h, true[2000:], 0.9)
        for name, h in (("binned", half), ("absolute", flat))
    }
    assert score["binned"] < score["absolute"]
    again = Conformal.from_dict(conf.to_dict())
    assert np.array_equal(
        again.half_width(np.zeros(3), pred=pred[:3]), conf.half_width(np.zeros(3), pred=pred[:3])
    )
    with pytest.raises(ValueError, match="predictions"):
        conf.half_width(np.zeros(3))


def test_interval_score_charges_misses() -> None:
    true = np.array([10.0, 20.0])
    assert interval_score(np.array([5.0, 15.0]), np.array([15.0, 25.0]), true, 0.9) == 10.0
    # 2-wide intervals, the second 2 above its true value: (2 + 2 + 20 * 2) / 2 rows
    assert interval_score(
        np.array([9.0, 22.0]), np.array([11.0, 24.0]), true, 0.9
    ) == pytest.approx(22.0)
