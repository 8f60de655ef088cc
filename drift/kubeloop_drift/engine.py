"""The check: each planned test against the current data, one feature per task.

Numeric features are converted from Arrow to NumPy once (float32 unless the profile says
float64), sorted at most once (only for ks and wasserstein), and compared with the reference
profile; binned tests need no sort, only a binary search per value. Categorical features cost
one ``bincount`` of their dictionary indices (or one Arrow hash pass for plain strings).
Features may run in a thread pool: NumPy's sort and search and Arrow's kernels release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from kubeloop_drift import binning
from kubeloop_drift.columns import category_counts, numeric_values, sort_in_place
from kubeloop_drift.ecdf_stats import ks_statistic, normalised_wasserstein, wasserstein_distance_sorted
from kubeloop_drift.frequency_stats import (
    chi_square_homogeneity,
    jensen_shannon_distance,
    population_stability_index,
)
from kubeloop_drift.ks_pvalue import ks_p_value, ks_p_value_asymptotic
from kubeloop_drift.outcome import FeatureOutcome, Histogram, categorical_histogram
from kubeloop_drift.profile import (
    OTHER_CATEGORIES_LABEL,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
)
from kubeloop_drift.selection import PlannedTest, is_drifted

Counts = np.ndarray


def check_features(
    profile: ReferenceProfile,
    current: pa.Table,
    plans: list[PlannedTest],
    workers: int = 1,
) -> list[FeatureOutcome]:
    """Run every planned test; outcomes in plan order."""

    def check_one(plan: PlannedTest) -> FeatureOutcome:
        return check_feature(profile, current.column(plan.feature), plan)

    if workers <= 1 or len(plans) <= 1:
        return [check_one(plan) for plan in plans]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
        return list(pool.map(check_one, plans))


def check_feature(profile: ReferenceProfile, column: pa.ChunkedArray, plan: PlannedTest) -> FeatureOutcome:
    """One feature's outcome; a side without any value gives a skipped outcome, not an error."""
    reference = profile.columns[plan.feature]
    if isinstance(reference, NumericProfile):
        return check_numeric(reference, column, plan)
    return check_categorical(reference, column, plan)


def check_numeric(reference: NumericProfile, column: pa.ChunkedArray, plan: PlannedTest) -> FeatureOutcome:
    values, missing = numeric_values(column, reference.dtype)
    outcome = FeatureOutcome.untested(plan, reference.count, reference.missing, int(values.size), missing)
    if reference.count == 0 or values.size == 0:
        return outcome.skip("no values in the " + ("reference" if reference.count == 0 else "current data"))
    statistic: float | None = None
    if plan.test in ("ks", "wasserstein"):
        values = sort_in_place(values)
        plot_counts = binning.counts_from_sorted(values, reference.plot_edges)
        if plan.test == "ks":
            ks = ks_statistic(reference.sorted_values, values)
            statistic = ks.value
            score = (
                ks_p_value(ks.units, reference.count, values.size)
                if reference.sorted_is_complete
                else ks_p_value_asymptotic(ks.value, reference.count, values.size)
            )
        else:
            distance = wasserstein_distance_sorted(reference.sorted_values, values)
            score = normalised_wasserstein(distance, reference.std)
    else:
        bin_counts = binning.counts_from_values(values, reference.bin_edges)
        plot_counts = binning.counts_from_values(values, reference.plot_edges)
        statistic, score = _binned_score(plan, reference.bin_counts, bin_counts)
    outcome.histogram = Histogram.numeric(reference.plot_edges, reference.plot_counts, plot_counts)
    if reference.distinct <= binning.DISCRETE_MAX_VALUES:  # one bin per reference value: name it
        values_named = [reference.minimum, *reference.plot_edges.tolist()]
        outcome.histogram.labels = [f"{value:.6g}" for value in values_named]
    outcome.reference_mean, outcome.reference_std = reference.mean, reference.std
    outcome.current_mean = float(np.mean(values, dtype=np.float64))
    outcome.current_std = float(np.std(values, dtype=np.float64))
    return outcome.scored(score, statistic, is_drifted(plan.test, score, plan.threshold))


def check_categorical(
    reference: CategoricalProfile, column: pa.ChunkedArray, plan: PlannedTest
) -> FeatureOutcome:
    current = category_counts(column)
    current_count = int(current.counts.sum())
    outcome = FeatureOutcome.untested(
        plan, reference.count, reference.missing, current_count, current.missing
    )
    if reference.count == 0 or current_count == 0:
        return outcome.skip("no values in the " + ("reference" if reference.count == 0 else "current data"))
    labels, reference_counts, current_counts = align_categories(reference, current.labels, current.counts)
    statistic, score = _binned_score(plan, reference_counts, current_counts)
    outcome.histogram = categorical_histogram(labels, reference_counts, current_counts)
    outcome.unseen_categories = len(labels) - len(reference.categories)
    return outcome.scored(score, statistic, is_drifted(plan.test, score, plan.threshold))


def align_categories(
    reference: CategoricalProfile, current_labels: list[str], current_counts: Counts, max_new: int = 1000
) -> tuple[list[str], Counts, Counts]:
    """Counts of both sides over the union of categories.

    A current category the reference never had gets a bucket with a zero reference count (at
    most ``max_new`` of them, the most frequent; the rest share one OTHER_CATEGORIES_LABEL
    bucket). When the reference's rare tail was pooled into OTHER_CATEGORIES_LABEL, an unknown
    current category may belong to that tail and is counted there instead.
    """
    index = {label: i for i, label in enumerate(reference.categories)}
    pooled_tail = index.get(OTHER_CATEGORIES_LABEL)
    labels = list(reference.categories)
    aligned = [0] * len(labels)
    for label, count in zip(current_labels, current_counts.tolist(), strict=True):
        position = index.get(label, pooled_tail)
        if position is None:
            new_label = label if len(labels) - len(reference.categories) < max_new else OTHER_CATEGORIES_LABEL
            position = index.get(new_label)
            if position is None:
                index[new_label] = position = len(labels)
                labels.append(new_label)
                aligned.append(0)
        aligned[position] += count
    reference_counts = np.zeros(len(labels), dtype=np.int64)
    reference_counts[: len(reference.categories)] = reference.category_counts
    return labels, reference_counts, np.asarray(aligned, dtype=np.int64)


def _binned_score(
    plan: PlannedTest, reference_counts: Counts, current_counts: Counts
) -> tuple[float | None, float]:
    """(statistic, score) of a frequency test; ks and wasserstein are not frequency tests."""
    scorers: dict[str, Callable[[Counts, Counts], tuple[float | None, float]]] = {
        "psi": lambda r, c: (None, population_stability_index(r, c)),
        "jensenshannon": lambda r, c: (None, jensen_shannon_distance(r, c)),
        "chi2": chi_square_homogeneity,
    }
    if plan.test not in scorers:
        raise ValueError(f"{plan.test} is not a frequency test")
    return scorers[plan.test](reference_counts, current_counts)
