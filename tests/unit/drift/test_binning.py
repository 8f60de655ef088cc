"""Quantile edges from the reference and counts of any sample in them."""

from __future__ import annotations

import numpy as np
import pytest

from kubeloop_drift import binning

pytestmark = pytest.mark.unit


def plain_counts(values: list[float], edges: list[float]) -> list[int]:
    """Bins (-inf, e1), [e1, e2), ..., [ek, inf), counted one value at a time."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[sum(1 for edge in edges if value >= edge)] += 1
    return counts


def test_quantiles_match_numpy_linear_method() -> None:
    rng = np.random.default_rng(1)
    for size in (1, 2, 3, 10, 1001):
        values = np.sort(rng.normal(size=size))
        probabilities = np.linspace(0, 1, 13)
        assert binning.quantiles_from_sorted(values, probabilities) == pytest.approx(
            np.quantile(values, probabilities)
        )


def test_continuous_feature_gets_deciles() -> None:
    values = np.sort(np.random.default_rng(2).normal(size=10_000))
    edges = binning.reference_bin_edges(values)
    assert edges.size == 9
    assert edges == pytest.approx(np.quantile(values, np.arange(1, 10) / 10))
    counts = binning.counts_from_sorted(values, edges)
    assert counts.sum() == values.size
    assert np.all(np.abs(counts - 1000) <= 1)


def test_discrete_feature_gets_one_bin_per_value() -> None:
    values = np.sort(np.array([0, 0, 1, 1, 1, 2, 5, 5], dtype=np.float32))
    edges = binning.reference_bin_edges(values)
    assert edges.tolist() == [1.0, 2.0, 5.0]
    assert binning.counts_from_sorted(values, edges).tolist() == [2, 3, 1, 2]


def test_constant_feature_gets_a_single_bin() -> None:
    values = np.full(30, 7.0)
    edges = binning.reference_bin_edges(values)
    assert edges.size == 0
    assert binning.counts_from_sorted(values, edges).tolist() == [30]
    assert binning.plot_bin_edges(values).size == 0


def test_heavy_value_does_not_make_empty_bins() -> None:
    values = np.sort(np.concatenate([np.zeros(900), np.linspace(1, 100, 100)]))
    edges = binning.reference_bin_edges(values)
    assert np.all(binning.counts_from_sorted(values, edges) > 0)


def test_sorted_and_unsorted_counts_agree_with_plain_counting() -> None:
    rng = np.random.default_rng(3)
    reference = np.sort(rng.normal(size=500))
    edges = binning.reference_bin_edges(reference)
    current = rng.normal(0.5, 2, size=300)  # values beyond the reference's range too
    expected = plain_counts(current.tolist(), edges.tolist())
    assert binning.counts_from_values(current, edges).tolist() == expected
    assert binning.counts_from_sorted(np.sort(current), edges).tolist() == expected


def test_plot_edges_are_equal_width() -> None:
    values = np.sort(np.random.default_rng(4).uniform(0, 1, 10_000))
    edges = binning.plot_bin_edges(values)
    assert edges.size == binning.PLOT_BINS - 1
    assert np.diff(edges) == pytest.approx(np.full(edges.size - 1, np.diff(edges).mean()))
