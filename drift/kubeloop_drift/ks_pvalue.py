"""p-values of the two-sample, two-sided Kolmogorov-Smirnov test, given the statistic only.

Mirrors ``scipy.stats.ks_2samp(method="auto")``: the exact distribution when both samples have
at most 10,000 values; above, Smirnov's asymptotic distribution (``kstwo`` at the effective
size n*m/(n+m)), computed without scipy.stats when that size exceeds 100,000. The exact one
counts the monotone lattice paths from (0, 0) to (n, m) that leave the band |i/n - j/m| < D,
one anti-diagonal at a time: n + m vector steps, each as wide as the band.
"""

from __future__ import annotations

import importlib
import math
import threading

import numpy as np

from kubeloop_drift.kolmogorov import LARGE_SIZE, kolmogorov_sf

EXACT_MAX_SIZE = 10_000
"""Largest sample size for the exact distribution (scipy's MAX_AUTO_N)."""


def prefetch_scipy_stats() -> None:
    """Import scipy.stats (about a second) on a background thread, while data is read and sorted.

    The asymptotic p-value needs it; NumPy and Arrow release the GIL, so the import overlaps
    with that work instead of adding to it. Python's import lock makes a later import wait.
    """
    threading.Thread(target=importlib.import_module, args=("scipy.stats",), daemon=True).start()


def uses_scipy_stats(reference_size: int, current_size: int) -> bool:
    """Whether the p-value of samples this large comes from scipy.stats.kstwo."""
    effective_size = round(reference_size * current_size / max(reference_size + current_size, 1))
    return max(reference_size, current_size) > EXACT_MAX_SIZE and effective_size <= LARGE_SIZE


def ks_p_value(ks_statistic_units: int, reference_size: int, current_size: int) -> float:
    """P(D >= d) under the null, with d = ks_statistic_units / (n * m)."""
    n, m = reference_size, current_size
    if max(n, m) <= EXACT_MAX_SIZE:
        return ks_p_value_exact(ks_statistic_units, n, m)
    return ks_p_value_asymptotic(ks_statistic_units / (float(n) * float(m)), n, m)


def ks_p_value_asymptotic(statistic: float, reference_size: int, current_size: int) -> float:
    """Smirnov's limit: the one-sample KS distribution at the effective size round(n*m/(n+m)).

    Above an effective size of 100,000 it is computed here (``kolmogorov_sf``, as scipy does
    it there); below, by ``scipy.stats.kstwo`` itself.
    """
    effective_size = max(round(reference_size * current_size / (reference_size + current_size)), 1)
    if effective_size > LARGE_SIZE:
        return kolmogorov_sf(effective_size, statistic)
    from scipy.stats import kstwo  # here: scipy.stats takes ~1 s to import (see prefetch_scipy_stats)

    return float(np.clip(kstwo.sf(statistic, effective_size), 0.0, 1.0))


def ks_p_value_exact(ks_statistic_units: int, reference_size: int, current_size: int) -> float:
    """Exact P(D >= d) for continuous data: the share of lattice paths that leave the band.

    A path from (0, 0) to (n, m) steps +1 in i (a reference value) or in j (a current one); it
    leaves the band at a cell with |i * m - j * n| >= ks_statistic_units. Counting the paths
    that have left, O(i, j) = O(i-1, j) + O(i, j-1) inside the band and C(i+j, i) outside,
    directly (not 1 - stayers) keeps tiny p-values accurate. The counts are weighted by
    p^i q^j (p = n/(n+m), q = m/(n+m)), which makes them probabilities of a random walk: every
    value lies in [0, 1], none overflows, and those that underflow contribute nothing. Each
    anti-diagonal i + j = s then follows from the one before in one vector step.
    """
    band = ks_statistic_units
    if band <= 0:
        return 1.0
    n, m = reference_size, current_size
    p, q = n / (n + m), m / (n + m)
    log_p, log_q = math.log(p), math.log(q)

    def inside(s: int) -> tuple[int, int]:
        """The i range of anti-diagonal s strictly inside the band (and the lattice)."""
        low = max(0, s - m, (s * n - band) // (n + m) + 1)
        high = min(n, s, -(-(s * n + band) // (n + m)) - 1)
        return low, high

    def walk_probability(s: int, i: int) -> float:
        """Weighted count of all paths to (i, s - i): the binomial probability, 0 off the lattice."""
        if i < 0 or i > n or s - i < 0 or s - i > m:
            return 0.0
        return math.exp(log_paths(i, s - i) + i * log_p + (s - i) * log_q)

    previous, previous_low, previous_high = np.zeros(1), 0, 0
    for s in range(1, n + m + 1):
        low, high = inside(s)
        if low > high:
            return 1.0
        # Predecessors of cells low..high are cells low-1..high of diagonal s-1.
        before = np.empty(high - low + 2)
        overlap_low, overlap_high = max(low - 1, previous_low), min(high, previous_high)
        before[overlap_low - (low - 1) : overlap_high - (low - 1) + 1] = previous[
            overlap_low - previous_low : overlap_high - previous_low + 1
        ]
        if low - 1 < previous_low:
            before[0] = walk_probability(s - 1, low - 1)
        if high > previous_high:
            before[-1] = walk_probability(s - 1, high)
        previous = p * before[:-1] + q * before[1:]
        previous_low, previous_high = low, high
    left = float(previous[n - previous_low])
    return float(min(1.0, left / walk_probability(n + m, n)))


def log_paths(i: int, j: int) -> float:
    """log C(i + j, i): the log of the number of lattice paths from (0, 0) to (i, j)."""
    return math.lgamma(i + j + 1) - math.lgamma(i + 1) - math.lgamma(j + 1)
