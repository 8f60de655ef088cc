"""Per-group performance and fairness over the groups of one sensitive attribute.

Groups with fewer than ``min_group_size`` labelled rows are reported (their size) but excluded
from the fairness differences, which are computed as fairlearn does with
``agg="between_groups"``: the largest minus the smallest group rate. Rows without a value for
the attribute belong to no group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeloop_drift.performance.metrics import POSITIVE, Task, compute

Array = np.ndarray[Any, Any]
FAIRNESS_METRICS = ("demographic_parity_difference", "equalized_odds_difference")


@dataclass(frozen=True)
class GroupResult:
    attribute: str
    group: str
    rows: int
    included: bool
    """False when the group is smaller than the minimum: reported, not used for fairness."""
    metrics: dict[str, float]


def group_masks(values: Array) -> dict[str, Array]:
    """Group name -> rows of that group (None values belong to none), groups sorted by name."""
    present = np.array([value is not None for value in values], bool)
    names = sorted({str(value) for value in values[present]})
    text = np.array([str(value) if value is not None else "" for value in values], object)
    return {name: present & (text == name) for name in names}


def per_group(
    attribute: str,
    values: Array,
    task: Task,
    names: Sequence[str],
    y_true: Array,
    y_pred: Array,
    score: Array | None,
    min_group_size: int,
) -> list[GroupResult]:
    """The metrics of each group of ``attribute`` (only for groups of at least ``min_group_size``)."""
    results = []
    for group, mask in group_masks(values).items():
        size = int(mask.sum())
        included = size >= min_group_size
        metrics = (
            compute(task, names, y_true[mask], y_pred[mask], None if score is None else score[mask])
            if included
            else {}
        )
        results.append(GroupResult(attribute, group, size, included, metrics))
    return results


def demographic_parity_difference(y_pred: Array, masks: Sequence[Array]) -> float:
    """Largest minus smallest rate of positive predictions across the groups."""
    rates = [float(np.mean(y_pred[mask] == POSITIVE)) for mask in masks if mask.any()]
    return max(rates) - min(rates) if rates else float("nan")


def equalized_odds_difference(y_true: Array, y_pred: Array, masks: Sequence[Array]) -> float:
    """The larger of the true-positive-rate and false-positive-rate differences across the groups
    (a rate a group cannot have, with no positives or no negatives, is left out, as fairlearn)."""
    differences = []
    for actual in (True, False):
        rates = []
        for mask in masks:
            condition = mask & ((y_true == POSITIVE) == actual)
            if condition.any():
                rates.append(float(np.mean(y_pred[condition] == POSITIVE)))
        if rates:
            differences.append(max(rates) - min(rates))
    return max(differences) if differences else float("nan")


def fairness(y_true: Array, y_pred: Array, groups: Sequence[GroupResult], values: Array) -> dict[str, float]:
    """Both fairness differences over the included groups of one attribute (binary tasks)."""
    masks = group_masks(values)
    included = [masks[g.group] for g in groups if g.included]
    return {
        "demographic_parity_difference": demographic_parity_difference(y_pred, included),
        "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, included),
    }
