"""KS statistic and Wasserstein distance from sorted samples, against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from kubeloop_drift.ecdf_stats import (
    ks_statistic,
    normalised_wasserstein,
    wasserstein_distance_sorted,
)

pytestmark = pytest.mark.unit


def compare(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    reference_sorted, current_sorted = np.sort(reference), np.sort(current)
    return (
        ks_statistic(reference_sorted, current_sorted).value,
        wasserstein_distance_sorted(reference_sorted, current_sorted),
    )


@pytest.mark.parametrize(
    ("size_reference", "size_current"), [(1, 1), (1, 2), (2, 1), (2, 2), (7, 300), (1000, 777)]
)
def test_matches_scipy_on_continuous_data(size_reference: int, size_current: int) -> None:
    rng = np.random.default_rng(size_reference * 1000 + size_current)
    reference = rng.normal(0, 1, size_reference)
    current = rng.normal(0.3, 1.4, size_current)
    ks, wasserstein = compare(reference, current)
    assert ks == pytest.approx(ks_2samp(reference, current).statistic, abs=1e-12)
    assert wasserstein == pytest.approx(wasserstein_distance(reference, current), rel=1e-9, abs=1e-12)


def test_matches_scipy_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        reference = rng.integers(0, 6, rng.integers(1, 80)).astype(np.float64)
        current = rng.integers(1, 8, rng.integers(1, 80)).astype(np.float64)
        ks, wasserstein = compare(reference, current)
        assert ks == pytest.approx(ks_2samp(reference, current).statistic, abs=1e-12)
        assert wasserstein == pytest.approx(wasserstein_distance(reference, current), abs=1e-12)


def test_float32_samples_match_scipy_on_the_same_values() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=5000).astype(np.float32)
    current = rng.normal(0.05, 1, size=4000).astype(np.float32)
    ks, wasserstein = compare(reference, current)
    assert ks == pytest.approx(ks_2samp(reference.astype(np.float64), current.astype(np.float64)).statistic)
    assert wasserstein == pytest.approx(wasserstein_distance(reference, current), rel=1e-6)


def test_known_answers() -> None:
    sample = np.arange(100, dtype=np.float64)
    assert compare(sample, sample) == (0.0, 0.0)
    ks, wasserstein = compare(sample, sample + 2.5)
    assert wasserstein == pytest.approx(2.5)  # a pure shift moves every unit of mass by the shift
    assert ks == pytest.approx(0.03)  # 3 of 100 points lie in each gap
    ks, wasserstein = compare(np.zeros(10), np.ones(5))
    assert (ks, wasserstein) == (1.0, 1.0)  # disjoint supports


def test_constant_columns() -> None:
    ks, wasserstein = compare(np.full(50, 3.0), np.full(20, 3.0))
    assert (ks, wasserstein) == (0.0, 0.0)
    ks, wasserstein = compare(np.full(50, 3.0), np.full(20, 4.0))
    assert (ks, wasserstein) == (1.0, 1.0)


def test_statistic_units_are_exact_integers() -> None:
    result = ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([2.5, 9.0]))
    assert result.units == round(result.value * 3 * 2) == 4  # D = 2/3 on [2, 2.5)


@pytest.mark.parametrize(("size_reference", "size_current"), [(6, 4), (4, 6), (12, 8), (5, 5), (3, 7)])
def test_wasserstein_when_quantile_breaks_coincide(size_reference: int, size_current: int) -> None:
    """Sizes with common divisors make breaks at i/n and j/m coincide (zero-length pieces)."""
    rng = np.random.default_rng(size_reference * 31 + size_current)
    reference, current = rng.normal(size=size_reference), rng.exponential(size=size_current)
    expected = wasserstein_distance(reference, current)
    assert compare(reference, current)[1] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ks_statistic(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        wasserstein_distance_sorted(np.array([1.0]), np.array([]))


def test_normalisation_by_reference_std_with_floor() -> None:
    assert normalised_wasserstein(0.5, 2.0) == 0.25
    assert normalised_wasserstein(0.5, 0.0) == 500.0  # std floored at 0.001, as Evidently
