"""Seeded percentile bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
Statistic = Callable[[Array], float]
"""A statistic of the rows at the given indices (a resample, with repeats)."""


def bootstrap_interval(
    statistic: Statistic, rows: int, samples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """The ``confidence`` percentile interval of ``statistic`` over ``samples`` resamples of ``rows``
    rows (NaN, NaN without rows or samples; resamples where the statistic is undefined are skipped)."""
    if rows == 0 or samples == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, rows, rows)) for _ in range(samples)], np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
