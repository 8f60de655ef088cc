"""Realized performance metrics, in NumPy/SciPy (the drift image has no scikit-learn); the unit
tests hold them equal to scikit-learn's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

Array = np.ndarray[Any, Any]
Task = Literal["binary", "multiclass", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")
LOWER_IS_BETTER = frozenset(REGRESSION_METRICS)
POSITIVE = 1.0


def accuracy(y_true: Array, y_pred: Array, _: Array | None = None) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def f1(y_true: Array, y_pred: Array, _: Array | None = None) -> float:
    """Binary F1 of the positive class (1), as ``sklearn.metrics.f1_score`` (0 when undefined)."""
    true_positive = np.sum((y_pred == POSITIVE) & (y_true == POSITIVE))
    denominator = np.sum(y_pred == POSITIVE) + np.sum(y_true == POSITIVE)
    return float(2 * true_positive / denominator) if denominator else 0.0


def macro_f1(y_true: Array, y_pred: Array, _: Array | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in either (sklearn's ``average="macro"``)."""
    classes = np.union1d(y_true, y_pred)
    scores = []
    for label in classes:
        true_positive = np.sum((y_pred == label) & (y_true == label))
        denominator = np.sum(y_pred == label) + np.sum(y_true == label)
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def roc_auc(y_true: Array, _: Array, score: Array | None) -> float:
    """Area under the ROC curve of ``score`` for the positive class (1): the Mann-Whitney statistic
    with ties counted half; NaN when only one class is present."""
    if score is None:
        return float("nan")
    positive = y_true == POSITIVE
    positives = int(positive.sum())
    negatives = len(y_true) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    from scipy.stats import rankdata  # here: scipy.stats takes ~1 s to import, and every check imports this

    ranks = rankdata(score)
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def mae(y_true: Array, y_pred: Array, _: Array | None = None) -> float:
    return float(np.mean(np.abs(y_true - y_pred))) if len(y_true) else float("nan")


def rmse(y_true: Array, y_pred: Array, _: Array | None = None) -> float:
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2))) if len(y_true) else float("nan")


Metric = Callable[[Array, Array, Array | None], float]


def metric_function(task: Task, name: str) -> Metric:
    """The function computing ``name`` for ``task`` (F1 is macro-averaged for multiclass)."""
    table: dict[str, Metric] = {
        "accuracy": accuracy,
        "f1": macro_f1 if task == "multiclass" else f1,
        "roc_auc": roc_auc,
        "mae": mae,
        "rmse": rmse,
    }
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if name not in allowed or (name == "roc_auc" and task != "binary"):
        raise ValueError(f"metric {name!r} does not apply to a {task} task")
    return table[name]


def default_metrics(task: Task) -> tuple[str, ...]:
    if task == "regression":
        return REGRESSION_METRICS
    return CLASSIFICATION_METRICS if task == "binary" else ("accuracy", "f1")


def compute(
    task: Task, names: Sequence[str], y_true: Array, y_pred: Array, score: Array | None
) -> dict[str, float]:
    """Each named metric on the given rows."""
    return {name: metric_function(task, name)(y_true, y_pred, score) for name in names}
