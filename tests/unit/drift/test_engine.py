"""The check of whole features: scores against independent computations, verdicts, edge cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from kubeloop.api.drift import DriftCheckConfig, FeatureTest
from kubeloop_drift.engine import align_categories, check_features
from kubeloop_drift.outcome import FeatureOutcome
from kubeloop_drift.profile import CategoricalProfile, NumericProfile, ProfileSettings
from kubeloop_drift.selection import current_kinds, plan_tests, selected_features

from .builders import mixed_table, profile_of
from .test_frequency_stats import plain_psi

pytestmark = pytest.mark.unit


def run(
    reference: pa.Table, current: pa.Table, tests: list[FeatureTest] | None = None, workers: int = 1
) -> dict[str, FeatureOutcome]:
    profile = profile_of(reference)
    config = DriftCheckConfig(tests=tests or [])
    features, _ = selected_features(profile, config, current_kinds(current.schema))
    outcomes = check_features(profile, current, plan_tests(profile, config, features), workers=workers)
    return {o.name: o for o in outcomes}


def test_numeric_scores_match_scipy() -> None:
    rng = np.random.default_rng(1)
    reference = pa.table({"x": rng.normal(0, 2, 3000)})
    current = pa.table({"x": rng.normal(0.3, 2, 2000)})
    x_ref = reference.column("x").to_numpy().astype(np.float32).astype(np.float64)  # float32 working dtype
    x_cur = current.column("x").to_numpy().astype(np.float32).astype(np.float64)
    ks = run(reference, current, [FeatureTest(feature="x", test="ks")])["x"]
    expected = ks_2samp(x_ref, x_cur)
    assert ks.statistic == pytest.approx(expected.statistic)
    assert ks.score == pytest.approx(expected.pvalue, rel=1e-6)
    assert ks.drifted
    wasserstein = run(reference, current, [FeatureTest(feature="x", test="wasserstein")])["x"]
    normalised = wasserstein_distance(x_ref, x_cur) / np.std(reference.column("x").to_numpy())
    assert wasserstein.score == pytest.approx(normalised, rel=1e-5)
    assert wasserstein.drifted  # 0.15 std >= 0.1


def test_numeric_psi_over_reference_deciles() -> None:
    rng = np.random.default_rng(2)
    reference = pa.table({"x": rng.normal(size=5000)})
    current = pa.table({"x": rng.normal(0.5, 1, size=5000)})
    outcome = run(reference, current, [FeatureTest(feature="x", test="psi")])["x"]
    ref_values = reference.column("x").to_numpy().astype(np.float32)
    cur_values = current.column("x").to_numpy().astype(np.float32)
    edges = np.quantile(ref_values, np.arange(1, 10) / 10).astype(np.float32)
    ref_counts = np.bincount(np.searchsorted(edges, ref_values, side="right"), minlength=10)
    cur_counts = np.bincount(np.searchsorted(edges, cur_values, side="right"), minlength=10)
    assert outcome.score == pytest.approx(plain_psi(ref_counts.tolist(), cur_counts.tolist()), rel=1e-9)
    assert outcome.drifted  # a half-std shift is well past PSI 0.2


def test_categorical_scores_over_the_union_of_categories() -> None:
    reference = pa.table({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    current = pa.table({"c": ["a"] * 40 + ["b"] * 30 + ["d"] * 30})  # c vanished, d is new
    ref_counts, cur_counts = np.array([50, 30, 20, 0]), np.array([40, 30, 0, 30])
    chi2 = run(reference, current, [FeatureTest(feature="c", test="chi2")])["c"]
    expected = chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    assert chi2.statistic == pytest.approx(expected.statistic)
    assert chi2.score == pytest.approx(expected.pvalue)
    assert chi2.unseen_categories == 1
    js = run(reference, current, [FeatureTest(feature="c", test="jensenshannon")])["c"]
    assert js.score == pytest.approx(float(jensenshannon(ref_counts, cur_counts)))
    psi = run(reference, current, [FeatureTest(feature="c", test="psi")])["c"]
    assert psi.score == pytest.approx(plain_psi(ref_counts.tolist(), cur_counts.tolist()))


def test_identical_distributions_do_not_drift_with_defaults() -> None:
    outcomes = run(mixed_table(20_000, seed=3), mixed_table(20_000, seed=4))
    assert {name: o.drifted for name, o in outcomes.items()} == dict.fromkeys(outcomes, False)


def test_shifted_distributions_drift_with_defaults() -> None:
    outcomes = run(mixed_table(20_000, seed=5), mixed_table(20_000, seed=6, shift=1.0))
    assert {name: o.drifted for name, o in outcomes.items()} == dict.fromkeys(outcomes, True)


def test_large_samples_do_not_cry_wolf() -> None:
    """A 0.02-std shift: KS at 200k rows calls it drift; the default (Wasserstein 0.1) does not."""
    rng = np.random.default_rng(7)
    reference = pa.table({"x": rng.normal(0, 1, 200_000)})
    current = pa.table({"x": rng.normal(0.02, 1, 200_000)})
    assert run(reference, current, [FeatureTest(feature="x", test="ks")])["x"].drifted
    default = run(reference, current)["x"]
    assert (default.test, default.drifted) == ("wasserstein", False)


def test_threads_give_the_same_outcomes() -> None:
    reference, current = mixed_table(5000, seed=8), mixed_table(5000, seed=9, shift=0.5)
    serial = run(reference, current)
    threaded = run(reference, current, workers=4)
    assert [(o.name, o.score, o.drifted) for o in serial.values()] == [
        (o.name, o.score, o.drifted) for o in threaded.values()
    ]


def test_missing_values_are_counted_not_tested() -> None:
    reference = pa.table({"x": [1.0, 2.0, None, 4.0, float("nan")], "c": ["a", None, "b", "a", "b"]})
    current = pa.table({"x": [None, None, 3.0], "c": [None, None, "a"]})
    outcomes = run(reference, current)
    assert (outcomes["x"].reference_missing, outcomes["x"].current_missing) == (2, 2)
    assert (outcomes["x"].reference_count, outcomes["x"].current_count) == (3, 1)
    assert (outcomes["c"].reference_missing, outcomes["c"].current_missing) == (1, 2)
    assert outcomes["c"].current_missing_share == pytest.approx(2 / 3)


def test_all_missing_current_column_is_skipped_not_a_crash() -> None:
    reference = pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    current = pa.table(
        {"x": pa.array([None, None], type=pa.float64()), "c": pa.array([None, None], type=pa.string())}
    )
    outcomes = run(reference, current)
    for name in ("x", "c"):
        assert outcomes[name].skipped == "no values in the current data"
        assert not outcomes[name].drifted
        assert outcomes[name].current_missing == 2


def test_all_null_column_without_type_counts_as_missing() -> None:
    reference = pa.table({"x": [1.0, 2.0, 3.0]})
    current = pa.table({"x": pa.nulls(4)})
    assert run(reference, current)["x"].skipped == "no values in the current data"


def test_constant_and_single_category_columns() -> None:
    reference = pa.table({"x": [5.0] * 40, "c": ["only"] * 40})
    same = run(reference, pa.table({"x": [5.0] * 10, "c": ["only"] * 10}))
    assert (same["x"].test, same["x"].score, same["x"].drifted) == ("chi2", 1.0, False)
    assert (same["c"].score, same["c"].drifted) == (1.0, False)
    moved = run(reference, pa.table({"x": [6.0] * 10, "c": ["other"] * 10}))
    assert moved["c"].drifted  # a new category takes everything
    assert run(
        reference, pa.table({"x": [6.0] * 10, "c": ["only"] * 10}), [FeatureTest(feature="x", test="ks")]
    )["x"].drifted


@pytest.mark.parametrize("rows", [1, 2])
def test_tiny_samples(rows: int) -> None:
    reference = pa.table({"x": [0.0, 1.0][:rows], "c": ["a", "b"][:rows]})
    current = pa.table({"x": [10.0, 11.0][:rows], "c": ["a", "z"][:rows]})
    outcomes = run(reference, current, [FeatureTest(feature="x", test="ks")])
    expected = ks_2samp(np.array([0.0, 1.0][:rows]), np.array([10.0, 11.0][:rows]))
    assert outcomes["x"].score == pytest.approx(expected.pvalue)
    assert outcomes["c"].test == "chi2"
    assert 0.0 <= outcomes["c"].score <= 1.0


def test_reference_sketch_for_large_references() -> None:
    """Past max_sorted_values the profile keeps order statistics; KS stays close to exact."""
    rng = np.random.default_rng(10)
    reference = pa.table({"x": rng.normal(size=50_000)})
    current = pa.table({"x": rng.normal(0.03, 1, size=20_000)})
    sketched = profile_of(reference, ProfileSettings(max_sorted_values=2_000)).columns["x"]
    assert isinstance(sketched, NumericProfile) and not sketched.sorted_is_complete
    config = DriftCheckConfig(tests=[FeatureTest(feature="x", test="ks")])
    plans = plan_tests(profile_of(reference), config, ["x"])
    exact = check_features(profile_of(reference), current, plans)[0]
    approximate = check_features(
        profile_of(reference, ProfileSettings(max_sorted_values=2_000)), current, plans
    )[0]
    assert approximate.statistic == pytest.approx(exact.statistic, abs=1e-3)


def test_unknown_categories_join_the_pooled_tail_of_a_large_reference() -> None:
    reference = profile_of(
        pa.table({"c": ["a"] * 5 + ["b"] * 3 + ["c", "d"]}), ProfileSettings(max_categories=2)
    )
    column = reference.columns["c"]
    assert isinstance(column, CategoricalProfile) and column.categories == ["a", "b", "(other)"]
    labels, reference_counts, current_counts = align_categories(column, ["a", "d", "z"], np.array([4, 2, 1]))
    assert labels == ["a", "b", "(other)"]  # d was in the pooled tail; z may have been
    assert reference_counts.tolist() == [5, 3, 2]
    assert current_counts.tolist() == [4, 0, 3]


def test_new_categories_beyond_the_cap_share_one_bucket() -> None:
    column = profile_of(pa.table({"c": ["a", "b"]})).columns["c"]
    assert isinstance(column, CategoricalProfile)
    labels, reference_counts, current_counts = align_categories(
        column, ["x", "y", "z", "a"], np.array([5, 4, 3, 1]), max_new=2
    )
    assert labels == ["a", "b", "x", "y", "(other)"]
    assert reference_counts.tolist() == [1, 1, 0, 0, 0]
    assert current_counts.tolist() == [1, 0, 5, 4, 3]
