"""Predictions joined to their labels by (request id, row), within a maturity window.

A prediction is *matured* once it is older than the maturity window (labels for it are then
expected); label coverage is labelled / matured predictions. Younger predictions are left out of
coverage and of the realized metrics, even when a label already came (counted as ``early``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kubeloop_drift.performance.labels import LabelSet

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Predictions:
    """What the model answered, one entry per payload-log row."""

    key: pa.Array
    """``prediction_keys(_request_id, _row)``."""
    timestamp_ms: Array
    predicted: Array
    """The predicted class (classification) or value (regression)."""
    score: Array | None = None
    """Binary classifiers: the positive class's probability (ROC AUC, CBPE)."""
    groups: Mapping[str, Array] = field(default_factory=dict)
    """Sensitive attribute -> one value (or None) per prediction."""

    def take(self, index: Array) -> Predictions:
        return Predictions(
            self.key.take(pa.array(index)),
            self.timestamp_ms[index],
            self.predicted[index],
            None if self.score is None else self.score[index],
            {name: values[index] for name, values in self.groups.items()},
        )


@dataclass(frozen=True)
class Joined:
    """Matured, labelled predictions with their labels, and the counts behind label coverage."""

    predictions: Predictions
    labels: Array
    matured: int
    labelled: int
    early: int
    """Labels already present for predictions still inside the maturity window."""

    @property
    def coverage(self) -> float:
        """Labelled / matured predictions (NaN when none has matured)."""
        return self.labelled / self.matured if self.matured else float("nan")


def join_labels(predictions: Predictions, labels: LabelSet, now_ms: float, maturity_ms: float) -> Joined:
    """Join each matured prediction to its label (if any)."""
    found = pc.index_in(predictions.key, value_set=labels.key).to_numpy(zero_copy_only=False)
    has_label = ~np.isnan(found.astype(np.float64))
    matured = predictions.timestamp_ms <= now_ms - maturity_ms
    use = np.flatnonzero(matured & has_label)
    return Joined(
        predictions=predictions.take(use),
        labels=labels.label[found[use].astype(np.int64)],
        matured=int(matured.sum()),
        labelled=len(use),
        early=int((~matured & has_label).sum()),
    )
