"""PSI, Jensen-Shannon and chi-square against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from kubeloop_drift.frequency_stats import (
    PSI_EPSILON,
    chi_square_homogeneity,
    jensen_shannon_distance,
    population_stability_index,
)

pytestmark = pytest.mark.unit


def plain_psi(reference: list[float], current: list[float], epsilon: float = PSI_EPSILON) -> float:
    """PSI written out term by term, no NumPy."""
    ref_total, cur_total = sum(reference), sum(current)
    total = 0.0
    for ref_count, cur_count in zip(reference, current, strict=True):
        r = max(ref_count / ref_total, epsilon)
        c = max(cur_count / cur_total, epsilon)
        total += (c - r) * math.log(c / r)
    return total


def plain_jensen_shannon(reference: list[float], current: list[float]) -> float:
    """JS distance from its definition: sqrt((KL(p||m) + KL(q||m)) / 2), natural log."""
    p = [x / sum(reference) for x in reference]
    q = [x / sum(current) for x in current]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(a: list[float], b: list[float]) -> float:
        return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)

    return math.sqrt((kl(p, m) + kl(q, m)) / 2)


@pytest.fixture
def random_counts() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    pairs = []
    for bins in (2, 3, 10, 37):
        reference = rng.integers(0, 1000, bins)
        current = rng.integers(0, 1000, bins)
        reference[0] = 0  # an empty bin on one side
        pairs.append((reference, current))
    return pairs


def test_psi_matches_plain_python(random_counts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for reference, current in random_counts:
        expected = plain_psi(reference.tolist(), current.tolist())
        assert population_stability_index(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_known_answers() -> None:
    assert population_stability_index(np.array([5, 5]), np.array([50, 50])) == pytest.approx(0.0)
    # 50/50 -> 90/10: (0.9-0.5)ln(1.8) + (0.1-0.5)ln(0.2)
    expected = 0.4 * math.log(1.8) - 0.4 * math.log(0.2)
    assert population_stability_index(np.array([50, 50]), np.array([90, 10])) == pytest.approx(expected)


def test_psi_empty_bin_uses_epsilon() -> None:
    score = population_stability_index(np.array([100, 0]), np.array([50, 50]))
    # reference shares [1, 0 -> epsilon], current shares [0.5, 0.5]
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert math.isfinite(score)
    assert score == pytest.approx(expected)


def test_jensen_shannon_matches_plain_python_and_scipy(
    random_counts: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    for reference, current in random_counts:
        expected = plain_jensen_shannon(reference.tolist(), current.tolist())
        assert jensen_shannon_distance(reference, current) == pytest.approx(expected, rel=1e-12)
        assert jensen_shannon_distance(reference, current) == pytest.approx(
            float(jensenshannon(reference, current)), rel=1e-9
        )


def test_jensen_shannon_bounds() -> None:
    assert jensen_shannon_distance(np.array([3, 7]), np.array([30, 70])) == pytest.approx(0.0, abs=1e-12)
    disjoint = jensen_shannon_distance(np.array([10, 0]), np.array([0, 10]))
    assert disjoint == pytest.approx(math.sqrt(math.log(2)))


def test_chi_square_is_the_contingency_form(random_counts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Ours equals scipy.stats.chi2_contingency([reference, current], correction=False)."""
    for reference, current in random_counts:
        statistic, p_value = chi_square_homogeneity(reference, current)
        expected = chi2_contingency(np.vstack([reference, current]), correction=False)
        assert statistic == pytest.approx(expected.statistic, rel=1e-10)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-300)


def test_chi_square_unseen_category_is_finite() -> None:
    """A category only the current window has: pooled expectation, no division by zero."""
    statistic, p_value = chi_square_homogeneity(np.array([500, 500, 0]), np.array([400, 400, 200]))
    expected = chi2_contingency(np.array([[500, 500, 0], [400, 400, 200]]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-300)
    assert p_value < 1e-10


def test_chi_square_single_category_or_empty_side_means_no_evidence() -> None:
    assert chi_square_homogeneity(np.array([10]), np.array([99])) == (0.0, 1.0)
    assert chi_square_homogeneity(np.array([10, 0]), np.array([99, 0])) == (0.0, 1.0)
    assert chi_square_homogeneity(np.array([10, 5]), np.array([0, 0])) == (0.0, 1.0)


def test_chi_square_same_proportions_is_not_significant() -> None:
    statistic, p_value = chi_square_homogeneity(np.array([100, 200, 300]), np.array([10, 20, 30]))
    assert statistic == pytest.approx(0.0, abs=1e-12)
    assert p_value == pytest.approx(1.0)
