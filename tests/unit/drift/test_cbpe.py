"""CBPE: isotonic calibration as scikit-learn's, expected metrics on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from kubeloop_drift.performance.cbpe import CBPE, expected_roc_auc, fit_isotonic

pytestmark = pytest.mark.unit


def test_isotonic_fit_equals_scikit_learns_with_ties_and_out_of_range_scores() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(size=3000), 3)
    labels = (rng.uniform(size=3000) < scores**2).astype(float)
    ours = fit_isotonic(scores, labels)
    theirs = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, labels)
    probe = np.r_[-0.5, rng.uniform(size=500), 1.5, scores[:100]]
    np.testing.assert_allclose(ours(probe), theirs.predict(probe), atol=1e-12)


def test_perfectly_calibrated_scores_give_expected_accuracy_mean_of_max_p() -> None:
    # the reference: each score's rows are positive in exactly that share, so calibration is identity
    grid = np.array([0.1, 0.3, 0.6, 0.8])
    scores = np.repeat(grid, 10)
    labels = np.concatenate([np.r_[np.ones(int(p * 10)), np.zeros(10 - int(p * 10))] for p in grid])
    estimator = CBPE.fit(scores, labels)
    np.testing.assert_allclose(estimator.calibrator(grid), grid, atol=1e-12)
    window = np.array([0.1, 0.1, 0.3, 0.6, 0.8, 0.8, 0.8])
    estimate = estimator.estimate(window)
    assert estimate["accuracy"] == pytest.approx(np.mean(np.maximum(window, 1 - window)))
    # by hand: TP = 0.6 + 3 * 0.8 = 3.0, FP = 0.4 + 3 * 0.2 = 1.0, FN = 0.1 + 0.1 + 0.3 = 0.5
    assert estimate["f1"] == pytest.approx(3.0 / (3.0 + 0.5 * (1.0 + 0.5)))


def test_expected_roc_auc_is_the_mean_auc_over_label_draws() -> None:
    rng = np.random.default_rng(11)
    scores = rng.uniform(size=60)
    probability = np.clip(scores + rng.normal(0, 0.1, 60), 0.01, 0.99)
    draws = [roc_auc_score(rng.uniform(size=60) < probability, scores) for _ in range(4000)]
    # the ratio of expectations approximates the expectation of the ratio closely at this size
    assert expected_roc_auc(probability, scores) == pytest.approx(np.mean(draws), abs=0.01)
    certain = np.array([0.0, 0.0, 1.0, 1.0])
    assert expected_roc_auc(certain, np.array([0.1, 0.2, 0.7, 0.9])) == pytest.approx(1.0)
    assert np.isnan(expected_roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])))
