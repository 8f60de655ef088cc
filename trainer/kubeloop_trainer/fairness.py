"""The fairness gate's numbers: fairlearn's per-group metrics and the two differences, and the verdict.

Pure: labels, predictions and sensitive values in, a `FairnessReport` out. The rates are
those of a positive class, one-vs-rest: the spec's ``positiveClass`` when it names one, else for
two classes the second of the sorted classes (as in `kubeloop_trainer.metrics`); for more, every
class in turn, the differences being the largest over the classes and the result's
``positiveClass`` the class furthest over its thresholds. Groups are the values of the sensitive
attributes (their intersections for several). A group with fewer rows than ``minGroupSize`` is
reported and marked excluded; the differences are fairlearn's ``between_groups`` differences over
the other groups, which equal ``demographic_parity_difference`` and ``equalized_odds_difference``
on the rows of those groups. Fewer than two groups left: the gate cannot judge (NotEvaluable),
which does not pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from kubeloop.api.fairness import Fairness, FairnessOutcome, FairnessResult, GroupMetrics
from kubeloop_trainer.errors import BadDataError

TOLERANCE = 1e-12
MESSAGE_LIMIT = 1024
METRICS = (
    ("demographicParityDifference", "demographic_parity_difference"),
    ("equalizedOddsDifference", "equalized_odds_difference"),
)
RATES = {
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
}


@dataclass(frozen=True)
class ClassFairness:
    """One positive class's groups and differences (None: fewer than two groups to compare)."""

    positive_class: str
    groups: list[GroupMetrics]
    demographic_parity_difference: float | None
    equalized_odds_difference: float | None


@dataclass(frozen=True)
class FairnessReport:
    """The verdict, and every class's table (for the MLflow artifact)."""

    result: FairnessResult
    per_class: list[ClassFairness] = field(default_factory=list)


def group_name(key: Any, attributes: list[str]) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{a}={v}" for a, v in zip(attributes, values, strict=True))


def by_group(
    y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], sensitive: npt.NDArray[np.str_], attributes: list[str]
) -> pd.DataFrame:
    """fairlearn's per-group table of 0/1 labels and predictions: count, accuracy and the rates;
    intersections without rows are dropped."""
    frame = MetricFrame(
        metrics={"count": count, "accuracy": accuracy_score, **RATES},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=pd.DataFrame(sensitive, columns=attributes),
    )
    table: pd.DataFrame = frame.by_group
    return table[table["count"].notna() & (table["count"] > 0)]


def spread(values: pd.Series) -> float:
    return float(values.max() - values.min())


def class_fairness(
    label: str, rates: pd.DataFrame, accuracy: pd.Series, attributes: list[str], min_group_size: int
) -> ClassFairness:
    groups = [
        GroupMetrics(
            group=group_name(key, attributes),
            count=int(row["count"]),
            accuracy=float(accuracy[key]),
            selection_rate=float(row["selection_rate"]),
            true_positive_rate=float(row["true_positive_rate"]),
            false_positive_rate=float(row["false_positive_rate"]),
            excluded=int(row["count"]) < min_group_size,
        )
        for key, row in rates.iterrows()
    ]
    groups.sort(key=lambda g: (-g.count, g.group))
    kept = rates[rates["count"] >= min_group_size]
    if len(kept) < 2:
        return ClassFairness(label, groups, None, None)
    odds = max(spread(kept["true_positive_rate"]), spread(kept["false_positive_rate"]))
    return ClassFairness(label, groups, spread(kept["selection_rate"]), odds)


def excess(part: ClassFairness, fairness: Fairness) -> float:
    """How far the class is over its thresholds (the largest excess; negative: within them)."""
    pairs = [
        (part.demographic_parity_difference, fairness.thresholds.demographic_parity_difference),
        (part.equalized_odds_difference, fairness.thresholds.equalized_odds_difference),
    ]
    found = [value - limit for value, limit in pairs if value is not None and limit is not None]
    return max(found, default=-math.inf)


def extremes(groups: list[GroupMetrics], rate: str) -> tuple[GroupMetrics, GroupMetrics]:
    kept = [g for g in groups if not g.excluded]
    return min(kept, key=lambda g: getattr(g, rate)), max(kept, key=lambda g: getattr(g, rate))


def gap(part: ClassFairness, rate: str) -> str:
    low, high = extremes(part.groups, rate)
    words = rate.replace("_", " ")
    return (
        f"{words} of class {part.positive_class!r}: {low.group} {getattr(low, rate):.4g}"
        f" vs {high.group} {getattr(high, rate):.4g}"
    )


def odds_rate(part: ClassFairness) -> str:
    tpr = [g.true_positive_rate for g in part.groups if not g.excluded]
    fpr = [g.false_positive_rate for g in part.groups if not g.excluded]
    return "true_positive_rate" if max(tpr) - min(tpr) >= max(fpr) - min(fpr) else "false_positive_rate"


def difference(part: ClassFairness, key: str) -> float:
    value: float | None = getattr(part, key)
    return 0.0 if value is None else value


def judge(
    per_class: list[ClassFairness], fairness: Fairness, attributes: str
) -> tuple[FairnessOutcome, ClassFairness, float | None, float | None, str]:
    """(outcome, the class shown, dpd, eod, message)."""
    thresholds = fairness.thresholds
    worst = max(per_class, key=lambda part: excess(part, fairness))
    if worst.demographic_parity_difference is None:
        sizes = ", ".join(f"{g.group} ({g.count})" for g in worst.groups)
        return (
            "NotEvaluable",
            worst,
            None,
            None,
            f"fewer than 2 groups of {attributes} have at least {fairness.min_group_size} test rows: "
            f"{sizes}; lower fairness.minGroupSize or train on more data",
        )
    dpd = max(p.demographic_parity_difference or 0.0 for p in per_class)
    eod = max(p.equalized_odds_difference or 0.0 for p in per_class)
    checks: list[tuple[str, float, float | None, str]] = []
    for metric, key in METRICS:
        part = max(per_class, key=partial(difference, key=key))
        rate = "selection_rate" if key == "demographic_parity_difference" else odds_rate(part)
        checks.append((metric, difference(part, key), getattr(thresholds, key), gap(part, rate)))
    breaches = [
        f"{metric} {value:.4g} > {limit:g} ({why})"
        for metric, value, limit, why in checks
        if limit is not None and value > limit + TOLERANCE
    ]
    if breaches:
        return "Failed", worst, dpd, eod, "fairness threshold exceeded: " + "; ".join(breaches)
    within = ", ".join(
        f"{metric} {value:.4g} <= {limit:g}" for metric, value, limit, _ in checks if limit is not None
    )
    return "Passed", worst, dpd, eod, f"within thresholds: {within}"


def positive_classes(named: str | None, classes: list[Any]) -> list[int]:
    """Indices of the classes whose rates are compared, one-vs-rest."""
    if named is not None:
        found = [i for i, value in enumerate(classes) if str(value) == named]
        if not found:
            raise BadDataError(f"fairness.positiveClass {named!r} is not a class of the data: {classes}")
        return found
    return [1] if len(classes) == 2 else list(range(len(classes)))


def assess(
    fairness: Fairness,
    y_true: npt.NDArray[Any],
    probabilities: npt.NDArray[Any],
    sensitive: npt.NDArray[np.str_],
    classes: list[Any],
) -> FairnessReport:
    """The gate on one split: ``y_true`` class indices, ``probabilities`` [n, k] of the exported model."""
    attributes = fairness.sensitive_attributes
    predicted = probabilities.argmax(axis=1)
    overall = MetricFrame(
        metrics=accuracy_score,
        y_true=y_true,
        y_pred=predicted,
        sensitive_features=pd.DataFrame(sensitive, columns=attributes),
    ).by_group
    positives = positive_classes(fairness.positive_class, classes)
    per_class = [
        class_fairness(
            str(classes[c]),
            by_group((y_true == c).astype(int), (predicted == c).astype(int), sensitive, attributes),
            overall,
            attributes,
            fairness.min_group_size,
        )
        for c in positives
    ]
    outcome, shown, dpd, eod, message = judge(per_class, fairness, " x ".join(attributes))
    excluded = [g for g in shown.groups if g.excluded]
    if excluded and outcome != "NotEvaluable":
        sizes = ", ".join(f"{g.group} ({g.count})" for g in excluded)
        message += f"; left out (fewer than {fairness.min_group_size} rows): {sizes}"
    result = FairnessResult(
        outcome=outcome,
        sensitive_attributes=attributes,
        positive_class=shown.positive_class,
        rows=len(y_true),
        min_group_size=fairness.min_group_size,
        demographic_parity_difference=dpd,
        equalized_odds_difference=eod,
        thresholds=fairness.thresholds,
        groups=shown.groups,
        message=message[:MESSAGE_LIMIT],
    )
    return FairnessReport(result, per_class)
