"""Evaluation metrics: accuracy, precision, recall, F1, ROC-AUC; RMSE, MAE, R2; and ``loss``.

Classification takes class probabilities [n, k]; precision, recall and F1 are binary for two
classes (class 1 positive) and macro-averaged otherwise; ROC-AUC is one-vs-rest macro for more
than two classes and left out when the rows hold a single class (it is undefined there).
``loss`` is the unweighted cross-entropy (log loss) for classification and the mean squared
error for regression, for every algorithm alike: the metric early stopping watches by default.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

from kubeloop_trainer.features import Task

LOWER_IS_BETTER = frozenset({"rmse", "mae", "loss"})


def classification_metrics(y_true: npt.NDArray[Any], probabilities: npt.NDArray[Any]) -> dict[str, float]:
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    average = "binary" if n_classes == 2 else "macro"
    labels = list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, average=average, labels=None if n_classes == 2 else labels, zero_division=0
    )
    result = {
        "loss": float(log_loss(y_true, probabilities, labels=labels)),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    if len(np.unique(y_true)) == n_classes:
        scores = probabilities[:, 1] if n_classes == 2 else probabilities
        result["roc_auc"] = float(roc_auc_score(y_true, scores, multi_class="ovr", labels=labels))
    return result


def regression_metrics(y_true: npt.NDArray[Any], predicted: npt.NDArray[Any]) -> dict[str, float]:
    predicted = predicted.reshape(-1)
    mse = float(mean_squared_error(y_true, predicted))
    return {
        "loss": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, predicted)),
        "r2": float(r2_score(y_true, predicted)) if len(y_true) > 1 else float("nan"),
    }


def evaluate(task: Task, y_true: npt.NDArray[Any], outputs: npt.NDArray[Any]) -> dict[str, float]:
    """The task's metrics for model outputs (probabilities, or predicted values)."""
    if task == "classification":
        return classification_metrics(y_true, outputs)
    return regression_metrics(y_true, outputs)


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{name}": value for name, value in metrics.items()}


def summarize_folds(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation of each metric over cross-validation folds: cv_<metric>_mean/std."""
    names = sorted({name for metrics in fold_metrics for name in metrics})
    summary: dict[str, float] = {}
    for name in names:
        values = np.array([metrics[name] for metrics in fold_metrics if name in metrics])
        summary[f"cv_{name}_mean"] = float(values.mean())
        summary[f"cv_{name}_std"] = float(values.std())
    return summary


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether ``value`` improves on ``best`` for a metric named like ``val_loss`` or ``val_f1``."""
    if best is None or math.isnan(best):
        return not math.isnan(value)
    if metric.rsplit("_", 1)[-1] in LOWER_IS_BETTER:
        return value < best
    return value > best
