"""Kolmogorov-Smirnov and Wasserstein statistics from two sorted samples, in linear time.

Both compare the empirical CDFs F_ref and F_cur of an ascending reference r (n values, sorted
once, when profiled) and an ascending current sample c (m values, sorted once per check).

KS: D = max(D+, D-), and both extremes sit at current values. With R_j and L_j the number of
reference values <= c_j and < c_j (one ``searchsorted``; L differs from R only at ties),
n*m*D- = max_j ((j+1)*n - R_j*m) and n*m*D+ = max_j (L_j*m - j*n). Within a run of equal
current values the extreme index wins, so ties need no special care. The result is an exact
integer, which the exact p-value uses.

Wasserstein-1: W = integral over u in (0, 1] of |Q_ref(u) - Q_cur(u)|, the quantile functions
being step functions with breaks at i/n and j/m. Which reference and current value each piece
pairs, and its length, follow from i, j, n and m by integer arithmetic: no search, no merge.

Both match ``scipy.stats.ks_2samp(...).statistic`` and ``scipy.stats.wasserstein_distance``
(which re-sort the concatenated samples) to floating-point rounding. Both work in chunks of
CHUNK values, so that their temporaries stay small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SortedSample = npt.NDArray[np.float32] | npt.NDArray[np.float64]

CHUNK = 1 << 16
"""Values processed per step: temporaries stay in cache and reuse memory (no page faults)."""
WASSERSTEIN_STD_FLOOR = 0.001
"""The reference standard deviation used to normalise Wasserstein is at least this (as Evidently)."""


@dataclass(frozen=True)
class KsStatistic:
    """The two-sample KS statistic of two sorted samples."""

    value: float
    """max |F_ref - F_cur|, in [0, 1]."""
    units: int
    """value * n * m: an exact integer."""


def ks_statistic(reference_sorted: SortedSample, current_sorted: SortedSample) -> KsStatistic:
    """KS statistic of two ascending, finite, non-empty samples."""
    n, m = _sizes(reference_sorted, current_sorted)
    units = 0
    for start in range(0, m, CHUNK):
        current = current_sorted[start : start + CHUNK]
        at_or_below = np.searchsorted(reference_sorted, current, side="right")
        below = at_or_below.copy()
        tied = at_or_below > 0
        tied[tied] = reference_sorted[at_or_below[tied] - 1] == current[tied]
        if tied.any():
            below[tied] = np.searchsorted(reference_sorted, current[tied], side="left")
        index = np.arange(start, start + current.size, dtype=np.int64)
        above_reference = int(np.max((index + 1) * n - at_or_below * m))  # n*m*max(F_cur - F_ref)
        below_reference = int(np.max(below * m - index * n))  # n*m*max(F_ref - F_cur)
        units = max(units, above_reference, below_reference)
    return KsStatistic(value=units / (float(n) * float(m)), units=units)


def wasserstein_distance_sorted(reference_sorted: SortedSample, current_sorted: SortedSample) -> float:
    """Wasserstein-1 distance of two ascending, finite, non-empty samples (feature units)."""
    n, m = _sizes(reference_sorted, current_sorted)
    total = 0.0
    # In units of 1/(n*m), reference quantile breaks are i*m (i = 1..n), current ones j*n.
    for start in range(0, n, CHUNK):
        i = np.arange(start + 1, min(start + CHUNK, n) + 1, dtype=np.int64)
        current_index = (i * m + n - 1) // n - 1  # current value paired with the piece ending at i*m
        piece = i * m - np.maximum((i - 1) * m, current_index * n)
        total += _weighted_gaps(reference_sorted[start : start + CHUNK], current_sorted[current_index], piece)
    for start in range(0, m, CHUNK):
        j = np.arange(start + 1, min(start + CHUNK, m) + 1, dtype=np.int64)
        reference_index = (j * n + m - 1) // m - 1  # reference value paired with the piece ending at j*n
        piece = j * n - np.maximum((j - 1) * n, (j * n // m) * m)
        total += _weighted_gaps(
            reference_sorted[reference_index], current_sorted[start : start + CHUNK], piece
        )
    return total / (float(n) * float(m))


def _weighted_gaps(left: SortedSample, right: SortedSample, weights: npt.NDArray[np.int64]) -> float:
    gaps = np.subtract(left, right, dtype=np.float64)
    np.abs(gaps, out=gaps)
    gaps *= weights  # no np.dot: BLAS threads wake up and spin for a 64k-element product
    return float(gaps.sum())


def _sizes(reference_sorted: SortedSample, current_sorted: SortedSample) -> tuple[int, int]:
    if reference_sorted.size == 0 or current_sorted.size == 0:
        raise ValueError("both samples must be non-empty")
    return int(reference_sorted.size), int(current_sorted.size)


def normalised_wasserstein(distance: float, reference_std: float) -> float:
    """Wasserstein distance in units of the reference's standard deviation (floored at 0.001).

    The same normalisation as Evidently's ``wasserstein`` test, so its 0.1 threshold reads
    "a tenth of a reference standard deviation of mass movement".
    """
    return distance / max(reference_std, WASSERSTEIN_STD_FLOOR)
