"""Bins for numeric features: quantile edges from the reference, counts of any sample in them.

A binning is an ascending array of interior edges ``e_1 < ... < e_k``; it defines k + 1 bins
``(-inf, e_1), [e_1, e_2), ..., [e_k, +inf)``, so every finite value (even one outside the
reference's range) lands in exactly one bin.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kubeloop_drift.ecdf_stats import SortedSample

FloatArray = npt.NDArray[np.float64]
CountArray = npt.NDArray[np.int64]

DEFAULT_QUANTILE_BINS = 10
"""Deciles of the reference: the classic PSI binning (and its 0.2 threshold)."""
DISCRETE_MAX_VALUES = 20
"""A numeric feature with at most this many distinct reference values gets one bin per value."""
PLOT_BINS = 30


def quantiles_from_sorted(sorted_values: SortedSample, probabilities: FloatArray) -> FloatArray:
    """Quantiles of an ascending sample, linear interpolation (numpy's default method)."""
    if sorted_values.size == 0:
        return np.full(probabilities.shape, np.nan)
    positions = probabilities * (sorted_values.size - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, sorted_values.size - 1)
    fraction = positions - below
    low = sorted_values[below].astype(np.float64)
    high = sorted_values[above].astype(np.float64)
    return low + fraction * (high - low)


def distinct_count(sorted_values: SortedSample) -> int:
    """Number of distinct values of an ascending sample."""
    if sorted_values.size == 0:
        return 0
    return int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1])) + 1


def reference_bin_edges(
    sorted_values: SortedSample, quantile_bins: int = DEFAULT_QUANTILE_BINS
) -> SortedSample:
    """Interior edges for PSI / Jensen-Shannon / chi-square over a numeric feature.

    One bin per distinct value when there are at most ``DISCRETE_MAX_VALUES`` of them (a
    discrete feature keeps its categories); otherwise the reference's quantiles at 1/q, ...,
    (q-1)/q, duplicates dropped (a heavy value gets one bin instead of several empty ones).
    The edges have the sample's dtype, so that reference and current values compare alike.
    """
    if distinct_count(sorted_values) <= DISCRETE_MAX_VALUES:
        return distinct_values(sorted_values)[1:]
    probabilities = np.arange(1, quantile_bins, dtype=np.float64) / quantile_bins
    edges: SortedSample = np.unique(
        quantiles_from_sorted(sorted_values, probabilities).astype(sorted_values.dtype)
    )
    above_minimum: SortedSample = edges[edges > sorted_values[0]]
    return above_minimum


def distinct_values(sorted_values: SortedSample) -> SortedSample:
    """The distinct values of an ascending sample, ascending, in its dtype."""
    keep = np.ones(sorted_values.size, dtype=np.bool_)
    keep[1:] = sorted_values[1:] != sorted_values[:-1]
    return sorted_values[keep]


def plot_bin_edges(sorted_values: SortedSample, bins: int = PLOT_BINS) -> SortedSample:
    """Equal-width interior edges over the reference's 0.5%-99.5% range, for histograms.

    A discrete feature gets one bin per distinct value; a constant one a single bin.
    """
    if distinct_count(sorted_values) <= DISCRETE_MAX_VALUES:
        return distinct_values(sorted_values)[1:]
    low, high = quantiles_from_sorted(sorted_values, np.array([0.005, 0.995]))
    if not high > low:
        low, high = float(sorted_values[0]), float(sorted_values[-1])
    edges = np.unique(np.linspace(low, high, bins + 1)[1:-1].astype(sorted_values.dtype))
    return edges


def counts_from_sorted(sorted_values: SortedSample, edges: SortedSample) -> CountArray:
    """Counts of an ascending sample in the bins of ``edges`` (binary search per edge only)."""
    below_edge = np.searchsorted(sorted_values, edges, side="left")
    bounds = np.concatenate(([0], below_edge, [sorted_values.size]))
    return np.diff(bounds).astype(np.int64)


def counts_from_values(values: SortedSample, edges: SortedSample) -> CountArray:
    """Counts of an unsorted sample in the bins of ``edges`` (one binary search per value)."""
    bin_index = np.searchsorted(edges, values, side="right")
    return np.bincount(bin_index, minlength=edges.size + 1).astype(np.int64)
