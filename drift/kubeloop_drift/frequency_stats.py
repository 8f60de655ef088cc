"""Statistics over binned or categorical frequencies: PSI, Jensen-Shannon distance, chi-square.

Every function takes two aligned count vectors, ``reference`` and ``current`` (the same bins or
categories in the same order; a category seen on one side only has a zero on the other), and is
pure: no I/O, no state. Counts may be integers or floats.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64] | npt.NDArray[np.float64]

PSI_EPSILON = 1e-4
"""Proportions below this are raised to it before the PSI logarithm (empty bins)."""


def proportions(counts: Counts) -> FloatArray:
    """Counts scaled to sum to one (all zeros stay zeros)."""
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def population_stability_index(reference: Counts, current: Counts, epsilon: float = PSI_EPSILON) -> float:
    """PSI = sum over bins of (c - r) * ln(c / r), proportions floored at ``epsilon``.

    0 for identical distributions; the classic reading is < 0.1 stable, 0.1-0.2 moderate,
    >= 0.2 significant shift.
    """
    ref = np.maximum(proportions(reference), epsilon)
    cur = np.maximum(proportions(current), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon_distance(reference: Counts, current: Counts) -> float:
    """sqrt of the Jensen-Shannon divergence with natural logarithms (as scipy's default).

    Ranges over [0, sqrt(ln 2)] ~ [0, 0.833]; empty bins need no epsilon (0 * log 0 = 0).
    """
    ref = proportions(reference)
    cur = proportions(current)
    middle = (ref + cur) / 2
    divergence = (_kullback_leibler(ref, middle) + _kullback_leibler(cur, middle)) / 2
    return math.sqrt(max(divergence, 0.0))


def _kullback_leibler(p: FloatArray, q: FloatArray) -> float:
    support = p > 0
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def chi_square_homogeneity(reference: Counts, current: Counts) -> tuple[float, float]:
    """Pearson's chi-square test that two samples come from one categorical distribution.

    The 2 x K contingency form (as ``scipy.stats.chi2_contingency(table, correction=False)``):
    expected counts come from the pooled sample, so a category seen on one side only is
    handled, and the reference's own sampling noise is accounted for. With two categories it
    equals the pooled two-proportion z-test. Returns (statistic, p-value); fewer than two
    non-empty categories, or an empty side, give (0.0, 1.0).
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    seen = (ref + cur) > 0
    ref, cur = ref[seen], cur[seen]
    ref_total, cur_total = ref.sum(), cur.sum()
    if ref.size < 2 or ref_total <= 0 or cur_total <= 0:
        return 0.0, 1.0
    pooled = (ref + cur) / (ref_total + cur_total)
    expected_ref = pooled * ref_total
    expected_cur = pooled * cur_total
    statistic = float(
        np.sum((ref - expected_ref) ** 2 / expected_ref + (cur - expected_cur) ** 2 / expected_cur)
    )
    return statistic, chi_square_survival(statistic, ref.size - 1)


def chi_square_survival(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square(degrees_of_freedom)."""
    from scipy.special import chdtrc  # here: scipy loads only when a chi-square test runs

    return float(chdtrc(degrees_of_freedom, statistic))
