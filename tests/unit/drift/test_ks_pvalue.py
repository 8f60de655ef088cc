"""KS p-values from the statistic alone, against scipy.stats.ks_2samp and exact path counts."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy.special import smirnov
from scipy.stats import ks_2samp, kstwo

from kubeloop_drift.ecdf_stats import ks_statistic
from kubeloop_drift.kolmogorov import LARGE_SIZE, kolmogorov_sf, smirnov_sf
from kubeloop_drift.ks_pvalue import EXACT_MAX_SIZE, ks_p_value, ks_p_value_exact

pytestmark = pytest.mark.unit


def brute_force_p_value(units: int, n: int, m: int) -> float:
    """1 - (paths staying strictly inside the band) / (all paths), in exact integers."""
    previous: list[int] = []
    for i in range(n + 1):
        row = [0] * (m + 1)
        for j in range(m + 1):
            if abs(i * m - j * n) >= units:
                continue
            row[j] = 1 if i == j == 0 else (previous[j] if i else 0) + (row[j - 1] if j else 0)
        previous = row
    total = comb(n + m, n)
    return float(Fraction(total - previous[m], total))


def statistic_units(reference: np.ndarray, current: np.ndarray) -> int:
    return ks_statistic(np.sort(reference), np.sort(current)).units


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(1, 1, 0.0), (2, 1, 1.0), (2, 2, 5.0), (9, 6, 0.5), (40, 25, 1.5)]
)
def test_exact_matches_path_count_in_integers(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n * 100 + m)
    units = statistic_units(rng.normal(size=n), rng.normal(shift, 1, size=m))
    assert ks_p_value_exact(units, n, m) == pytest.approx(brute_force_p_value(units, n, m), rel=1e-10)


def test_exact_matches_scipy_exact_including_tiny_p_values() -> None:
    rng = np.random.default_rng(8)
    cases = [
        (30, 30, 0.2),
        (200, 120, 0.3),
        (600, 400, 1.0),
        (1000, 1000, 0.1),
        (300, 3000, 0.2),
        (5000, 3000, 0.5),
    ]
    for n, m, shift in cases:
        reference, current = rng.normal(size=n), rng.normal(shift, 1, size=m)
        expected = ks_2samp(reference, current, method="exact").pvalue
        assert ks_p_value(statistic_units(reference, current), n, m) == pytest.approx(expected, rel=1e-8)


def test_large_samples_use_the_asymptotic_distribution_like_scipy() -> None:
    rng = np.random.default_rng(9)
    n, m = EXACT_MAX_SIZE + 1, 20_000
    reference, current = rng.normal(size=n), rng.normal(0.01, 1, size=m)
    expected = ks_2samp(reference, current).pvalue  # scipy's auto: asymptotic above 10,000
    assert ks_p_value(statistic_units(reference, current), n, m) == pytest.approx(expected, rel=1e-9)


def test_no_difference_means_p_value_one() -> None:
    assert ks_p_value(0, 5, 5) == 1.0
    assert ks_p_value_exact(0, 1, 1) == 1.0


def test_complete_separation_of_tiny_samples() -> None:
    # n = m = 1, D = 1: both orderings of two values give D = 1, so p = 1.
    assert ks_p_value_exact(1, 1, 1) == pytest.approx(1.0)
    # n = m = 2, D = 1: 2 of the C(4, 2) = 6 orderings separate the samples.
    assert ks_p_value_exact(4, 2, 2) == pytest.approx(2 / 6)


@pytest.mark.parametrize("size", [100_001, 150_000])
def test_large_sample_limit_matches_scipy_kstwo_without_importing_it(size: int) -> None:
    statistics = [*np.geomspace(1e-8, 0.9, 40).tolist(), 0.6 / size, 1.5 / size, (size - 1) / size, 0.5]
    for statistic in statistics:
        expected = float(kstwo.sf(statistic, size))
        assert kolmogorov_sf(size, statistic) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("size", [1, 7, 50, 1000, 100_001])
def test_smirnov_sum_matches_scipy_special(size: int) -> None:
    """scipy.special.smirnov loops over the n terms (seconds at n = 500,000); ours sums them vectorised.
    Above about a million terms scipy switches to an approximation, ours stays exact."""
    for statistic in (0.001, 0.01, 0.05, 0.2, 0.5, 0.9):
        expected = float(smirnov(size, statistic))
        assert smirnov_sf(size, statistic) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_small_sizes_are_left_to_scipy() -> None:
    with pytest.raises(ValueError, match=r"use scipy\.stats\.kstwo"):
        kolmogorov_sf(LARGE_SIZE, 0.01)
