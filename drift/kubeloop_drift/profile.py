"""The reference profile: everything a check needs from the reference, computed once.

Per numeric feature: counts, moments, the sorted values (all of them up to
``max_sorted_values``, else that many evenly spaced order statistics), bin edges and counts
for PSI / Jensen-Shannon / chi-square, and histogram bins for the report. Per categorical
feature: the category counts (the ``max_categories`` most frequent, the rest pooled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from kubeloop_drift import binning
from kubeloop_drift.columns import (
    ColumnKind,
    WorkingDtype,
    category_counts,
    choose_working_dtype,
    column_kind,
    float32_keeps_distinct,
    numeric_values,
    sort_in_place,
)
from kubeloop_drift.ecdf_stats import SortedSample

PROFILE_FORMAT = 1
OTHER_CATEGORIES_LABEL = "(other)"


@dataclass(frozen=True)
class ProfileSettings:
    """How a profile was built; a profile built with other settings is rebuilt."""

    quantile_bins: int = binning.DEFAULT_QUANTILE_BINS
    max_sorted_values: int = 1_000_000
    """References up to this size keep every sorted value: KS and Wasserstein are exact."""
    max_categories: int = 1000
    """Categorical features keep this many most frequent categories; the rest are pooled."""


@dataclass
class NumericProfile:
    """A numeric reference column."""

    name: str
    arrow_type: str
    dtype: WorkingDtype
    count: int
    missing: int
    distinct: int
    mean: float
    std: float
    minimum: float
    maximum: float
    sorted_values: SortedSample
    """Ascending; every value when ``sorted_is_complete``, else evenly spaced order statistics."""
    sorted_is_complete: bool
    bin_edges: SortedSample
    bin_counts: npt.NDArray[np.int64]
    plot_edges: SortedSample
    plot_counts: npt.NDArray[np.int64]
    kind: ColumnKind = "numeric"


@dataclass
class CategoricalProfile:
    """A categorical reference column."""

    name: str
    arrow_type: str
    count: int
    missing: int
    categories: list[str]
    category_counts: npt.NDArray[np.int64]
    """Aligned with ``categories``; a pooled tail, if any, is the last entry, OTHER_CATEGORIES_LABEL."""
    kind: ColumnKind = "categorical"

    @property
    def distinct(self) -> int:
        return len(self.categories)


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass
class ReferenceProfile:
    """The profile of a whole reference dataset."""

    reference_uri: str
    fingerprint: str
    rows: int
    settings: ProfileSettings
    columns: dict[str, ColumnProfile]
    unsupported: dict[str, str] = field(default_factory=dict)
    """Columns that are not checked, with the reason (e.g. their type)."""
    created: str = ""


def profile_numeric(
    name: str, column: pa.ChunkedArray | pa.Array, settings: ProfileSettings
) -> NumericProfile:
    """Profile one numeric column (one sort)."""
    exact, missing = numeric_values(column, "float64")
    mean = float(np.mean(exact)) if exact.size else float("nan")
    std = float(np.std(exact)) if exact.size else float("nan")
    largest = max(abs(float(np.min(exact))), abs(float(np.max(exact)))) if exact.size else 0.0
    dtype = choose_working_dtype(largest, std, pa.types.is_integer(column.type))
    exact = sort_in_place(exact)
    if dtype == "float32" and not float32_keeps_distinct(exact):
        dtype = "float64"  # rounding would merge values: at this sample size, a verdict could change
    values: SortedSample = exact.astype(np.float32) if dtype == "float32" else exact
    bin_edges = binning.reference_bin_edges(values, settings.quantile_bins)
    plot_edges = binning.plot_bin_edges(values)
    complete = values.size <= settings.max_sorted_values
    return NumericProfile(
        name=name,
        arrow_type=str(column.type),
        dtype=dtype,
        count=int(values.size),
        missing=missing,
        distinct=binning.distinct_count(values),
        mean=mean,
        std=std,
        minimum=float(values[0]) if values.size else float("nan"),
        maximum=float(values[-1]) if values.size else float("nan"),
        sorted_values=values
        if complete
        else evenly_spaced_order_statistics(values, settings.max_sorted_values),
        sorted_is_complete=complete,
        bin_edges=bin_edges,
        bin_counts=binning.counts_from_sorted(values, bin_edges),
        plot_edges=plot_edges,
        plot_counts=binning.counts_from_sorted(values, plot_edges),
    )


def evenly_spaced_order_statistics(sorted_values: SortedSample, size: int) -> SortedSample:
    """``size`` values standing for equal shares of the sample: the midpoint of each share."""
    positions = ((np.arange(size) + 0.5) * (sorted_values.size / size)).astype(np.int64)
    return sorted_values[positions]


def profile_categorical(
    name: str, column: pa.ChunkedArray | pa.Array, settings: ProfileSettings
) -> CategoricalProfile:
    """Profile one categorical column (one hash pass)."""
    frequencies = category_counts(column)
    labels, counts = frequencies.labels, frequencies.counts
    if len(labels) > settings.max_categories:
        kept = settings.max_categories
        labels = [*labels[:kept], OTHER_CATEGORIES_LABEL]
        counts = np.append(counts[:kept], counts[kept:].sum())
    return CategoricalProfile(
        name=name,
        arrow_type=str(column.type),
        count=int(counts.sum()),
        missing=frequencies.missing,
        categories=labels,
        category_counts=counts.astype(np.int64),
    )


def profile_column(
    name: str, column: pa.ChunkedArray | pa.Array, settings: ProfileSettings
) -> ColumnProfile | str:
    """The profile of a column, or why it cannot be profiled."""
    kind = column_kind(column.type)
    if kind == "numeric":
        return profile_numeric(name, column, settings)
    if kind == "categorical":
        return profile_categorical(name, column, settings)
    return f"type {column.type} is neither numeric nor categorical"


def is_feature_column(name: str) -> bool:
    """Columns starting with '_' are metadata (timestamps, ids, outputs), never features."""
    return not name.startswith("_")


def summary_line(profile: ReferenceProfile) -> str:
    """A one-line description of a profile, for progress output."""
    kinds = [column.kind for column in profile.columns.values()]
    return (
        f"{profile.rows:,} rows, {kinds.count('numeric')} numeric and "
        f"{kinds.count('categorical')} categorical features"
        + (f", {len(profile.unsupported)} unsupported" if profile.unsupported else "")
    )
