"""The float32 working type never flips a verdict: on 1M vs 1M rows of N(100, 0.08) with a tiny
shift, float32 rounding merges ~38 values per step and moves the KS p-value across 0.05."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import ks_2samp

from kubeloop_drift.columns import float32_keeps_distinct
from kubeloop_drift.ecdf_stats import ks_statistic
from kubeloop_drift.engine import check_numeric
from kubeloop_drift.ks_pvalue import ks_p_value
from kubeloop_drift.profile import ProfileSettings, profile_numeric
from kubeloop_drift.selection import PlannedTest

pytestmark = pytest.mark.unit

ROWS = 1_000_000
SEED, SHIFT = 2, 0.0003184082  # found by bisection: scipy's float64 p-value lands just under 0.05
KS = PlannedTest("f", "numeric", "ks", 0.05, "feature")


def test_ks_verdict_matches_scipy_float64_where_float32_flips_it() -> None:
    rng = np.random.default_rng(SEED)
    reference = rng.normal(100, 0.08, ROWS)
    current = rng.normal(100, 0.08, ROWS) + SHIFT
    scipy_p = float(ks_2samp(reference, current).pvalue)
    # the flip, reproduced: the same test on float32 copies says "no drift"
    ref32, cur32 = np.sort(reference.astype(np.float32)), np.sort(current.astype(np.float32))
    float32_p = ks_p_value(ks_statistic(ref32, cur32).units, ROWS, ROWS)
    profile = profile_numeric("f", pa.array(reference), ProfileSettings())
    ours = check_numeric(profile, pa.chunked_array([pa.array(current)]), KS)
    print(f"\nKS p-values: scipy float64 {scipy_p:.5f}, float32 {float32_p:.5f}, ours {ours.score:.5f}")
    assert scipy_p < 0.05 <= float32_p
    assert profile.dtype == "float64"
    assert ours.drifted == (scipy_p < 0.05)
    assert ours.score == pytest.approx(scipy_p, rel=1e-6)


def test_float32_is_kept_only_when_rounding_merges_nothing() -> None:
    measured = np.round(np.random.default_rng(0).normal(50, 10, 100_000), 2)  # two decimals, as recorded
    assert float32_keeps_distinct(np.sort(measured))
    assert profile_numeric("f", pa.array(measured), ProfileSettings()).dtype == "float32"
    crowded = np.random.default_rng(0).normal(100, 0.08, 100_000)
    assert not float32_keeps_distinct(np.sort(crowded))
    assert profile_numeric("f", pa.array(crowded), ProfileSettings()).dtype == "float64"
