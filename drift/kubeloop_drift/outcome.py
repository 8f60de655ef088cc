"""What a check finds for one feature, and the histogram the report draws for it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeloop.api.drift import FeatureResult, StatTest
from kubeloop_drift.columns import ColumnKind
from kubeloop_drift.selection import PlannedTest

PLOT_MAX_CATEGORIES = 20
REST_LABEL = "(rest)"


@dataclass
class Histogram:
    """Reference and current shares over the same bins (numeric) or categories."""

    reference_shares: list[float]
    current_shares: list[float]
    edges: list[float] | None = None
    """Interior bin edges of a numeric histogram (len(shares) - 1 of them); None for categories."""
    labels: list[str] | None = None
    """Category labels (or the values of a discrete numeric feature), one per bin."""

    @classmethod
    def numeric(
        cls,
        edges: npt.NDArray[Any],
        reference_counts: npt.NDArray[np.int64],
        current_counts: npt.NDArray[np.int64],
    ) -> Histogram:
        return cls(_shares(reference_counts), _shares(current_counts), edges=[float(e) for e in edges])


def categorical_histogram(
    labels: list[str], reference_counts: npt.NDArray[np.int64], current_counts: npt.NDArray[np.int64]
) -> Histogram:
    """The PLOT_MAX_CATEGORIES largest categories (by the larger of both shares), the rest pooled."""
    reference_shares = np.asarray(_shares(reference_counts))
    current_shares = np.asarray(_shares(current_counts))
    order = np.argsort(-np.maximum(reference_shares, current_shares), kind="stable")
    shown, rest = order[:PLOT_MAX_CATEGORIES], order[PLOT_MAX_CATEGORIES:]
    shown_labels = [labels[i] for i in shown]
    reference_list = reference_shares[shown].tolist()
    current_list = current_shares[shown].tolist()
    if rest.size:
        shown_labels.append(REST_LABEL)
        reference_list.append(float(reference_shares[rest].sum()))
        current_list.append(float(current_shares[rest].sum()))
    return Histogram(reference_list, current_list, labels=shown_labels)


def _shares(counts: npt.NDArray[np.int64]) -> list[float]:
    total = int(counts.sum())
    return [float(c) / total if total else 0.0 for c in counts.tolist()]


@dataclass
class FeatureOutcome:
    """The verdict on one feature, with what explains it."""

    name: str
    kind: ColumnKind
    test: StatTest
    threshold: float
    origin: str
    reference_count: int
    reference_missing: int
    current_count: int
    current_missing: int
    score: float = math.nan
    """p-value for ks and chi2, the distance for psi, wasserstein and jensenshannon."""
    statistic: float | None = None
    """The KS statistic D or the chi-square statistic, for p-value tests."""
    drifted: bool = False
    skipped: str | None = None
    """Why the feature could not be tested (then it counts in no share)."""
    reference_mean: float | None = None
    reference_std: float | None = None
    current_mean: float | None = None
    current_std: float | None = None
    unseen_categories: int | None = None
    histogram: Histogram | None = field(default=None, repr=False)

    @classmethod
    def untested(
        cls,
        plan: PlannedTest,
        reference_count: int,
        reference_missing: int,
        current_count: int,
        current_missing: int,
    ) -> FeatureOutcome:
        return cls(
            name=plan.feature,
            kind=plan.kind,
            test=plan.test,
            threshold=plan.threshold,
            origin=plan.origin,
            reference_count=reference_count,
            reference_missing=reference_missing,
            current_count=current_count,
            current_missing=current_missing,
        )

    def skip(self, reason: str) -> FeatureOutcome:
        self.skipped = reason
        return self

    def scored(self, score: float, statistic: float | None, drifted: bool) -> FeatureOutcome:
        self.score, self.statistic, self.drifted = float(score), statistic, drifted
        return self

    @property
    def tested(self) -> bool:
        return self.skipped is None

    @property
    def current_missing_share(self) -> float:
        total = self.current_count + self.current_missing
        return self.current_missing / total if total else 0.0

    @property
    def reference_missing_share(self) -> float:
        total = self.reference_count + self.reference_missing
        return self.reference_missing / total if total else 0.0

    def feature_result(self) -> FeatureResult:
        """The compact API form (tested features only)."""
        return FeatureResult(
            name=self.name, test=self.test, score=self.score, threshold=self.threshold, drifted=self.drifted
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "test": self.test,
            "origin": self.origin,
            "threshold": self.threshold,
            "score": None if math.isnan(self.score) else self.score,
            "drifted": self.drifted,
            "reference": {"count": self.reference_count, "missing": self.reference_missing},
            "current": {"count": self.current_count, "missing": self.current_missing},
        }
        if self.statistic is not None:
            data["statistic"] = self.statistic
        if self.skipped is not None:
            data["skipped"] = self.skipped
        if self.reference_mean is not None:
            data["reference"].update(mean=self.reference_mean, std=self.reference_std)
        if self.current_mean is not None:
            data["current"].update(mean=self.current_mean, std=self.current_std)
        if self.unseen_categories is not None:
            data["current"]["unseen_categories"] = self.unseen_categories
        return data
