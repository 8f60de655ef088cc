"""Confidence-based performance estimation (CBPE, NannyML's method) for binary classifiers.

On a labelled reference set, the model's scores are calibrated with isotonic regression (as
scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``, which NannyML uses): equal scores
are pooled, the pool-adjacent-violators fit makes the curve non-decreasing, and new scores are
interpolated linearly between the fitted points (clipped beyond them). For a window without
labels, a calibrated score p is the probability that the row is positive, so the expected
confusion matrix is TP = sum p over predicted positives, FP = sum (1 - p) there, FN = sum p and
TN = sum (1 - p) over predicted negatives, giving

- accuracy = (TP + TN) / n = mean of p where predicted 1, 1 - p where predicted 0;
- F1 = TP / (TP + (FP + FN) / 2);
- ROC AUC: the ROC curve of the model's own scores with expected positives (calibrated p) and
  negatives (1 - p) at each threshold, integrated by the trapezoid rule (ties in the score form
  one threshold).

Unlike NannyML, calibration is always applied (NannyML skips it when cross-validation finds the
scores already calibrated); with calibrated scores the two agree closely anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
ESTIMATED_METRICS = ("accuracy", "f1", "roc_auc")


@dataclass(frozen=True)
class IsotonicCalibrator:
    """A fitted non-decreasing map from scores to probabilities."""

    thresholds: Array
    values: Array

    def __call__(self, scores: Array) -> Array:
        return np.interp(np.asarray(scores, np.float64), self.thresholds, self.values)


def fit_isotonic(scores: Array, labels: Array) -> IsotonicCalibrator:
    """Isotonic regression of ``labels`` (0/1) on ``scores`` by pool-adjacent-violators."""
    x = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    if len(x) == 0:
        raise ValueError("calibration needs at least one labelled reference row")
    unique, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y)
    # blocks as (mean, weight, first index); merge while the previous block's mean is larger
    means: list[float] = []
    weights: list[float] = []
    starts: list[int] = []
    for index, (total, weight) in enumerate(zip(sums, counts, strict=True)):
        mean, size, start = total / weight, float(weight), index
        while means and means[-1] >= mean:
            previous_mean, previous_size = means.pop(), weights.pop()
            start = starts.pop()
            mean = (previous_mean * previous_size + mean * size) / (previous_size + size)
            size += previous_size
        means.append(mean)
        weights.append(size)
        starts.append(start)
    fitted = np.empty(len(unique))
    bounds = [*starts, len(unique)]
    for block, mean in enumerate(means):
        fitted[bounds[block] : bounds[block + 1]] = mean
    return IsotonicCalibrator(unique, fitted)


def expected_accuracy(probability: Array, predicted: Array) -> float:
    return float(np.mean(np.where(predicted == 1, probability, 1 - probability)))


def expected_f1(probability: Array, predicted: Array) -> float:
    positive = predicted == 1
    true_positive = probability[positive].sum()
    false_positive = (1 - probability[positive]).sum()
    false_negative = probability[~positive].sum()
    denominator = true_positive + 0.5 * (false_positive + false_negative)
    return float(true_positive / denominator) if denominator else 0.0


def expected_roc_auc(probability: Array, scores: Array) -> float:
    """The ROC AUC expected when each row is positive with its calibrated probability."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    ordered_scores = np.asarray(scores, np.float64)[order]
    true_positives = np.cumsum(probability[order])
    false_positives = np.arange(1, len(order) + 1) - true_positives
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered_scores)), len(order) - 1]
    tps = np.r_[0.0, true_positives[last_of_tie]]
    fps = np.r_[0.0, false_positives[last_of_tie]]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


@dataclass(frozen=True)
class CBPE:
    """Fitted on a labelled reference; ``estimate`` needs only scores (and predictions)."""

    calibrator: IsotonicCalibrator
    threshold: float = 0.5

    @classmethod
    def fit(cls, scores: Array, labels: Array, threshold: float = 0.5) -> CBPE:
        return cls(fit_isotonic(scores, labels), threshold)

    def estimate(self, scores: Array, predicted: Array | None = None) -> dict[str, float]:
        """Estimated accuracy, F1 and ROC AUC of one window (``predicted``: score >= threshold)."""
        scores = np.asarray(scores, np.float64)
        if len(scores) == 0:
            return {name: float("nan") for name in ESTIMATED_METRICS}
        predicted = (scores >= self.threshold).astype(np.int64) if predicted is None else predicted
        probability = self.calibrator(scores)
        return {
            "accuracy": expected_accuracy(probability, predicted),
            "f1": expected_f1(probability, predicted),
            "roc_auc": expected_roc_auc(probability, scores),
        }
