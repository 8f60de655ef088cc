"""Default tests by type and size, overrides, verdict rules and the dataset share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from kubeloop.api.drift import DriftCheckConfig, FeatureTest
from kubeloop_drift.errors import SchemaMismatchError, UsageError
from kubeloop_drift.outcome import FeatureOutcome
from kubeloop_drift.result import dataset_verdict
from kubeloop_drift.selection import (
    DEFAULT_THRESHOLDS,
    PlannedTest,
    current_kinds,
    default_test,
    is_drifted,
    plan_tests,
    selected_features,
)

from .builders import mixed_table, profile_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (1000, {"age": "ks", "income": "ks", "kids": "chi2", "city": "chi2", "member": "chi2"}),
        (
            1001,
            {
                "age": "wasserstein",
                "income": "wasserstein",
                "kids": "jensenshannon",
                "city": "jensenshannon",
                "member": "jensenshannon",
            },
        ),
    ],
)
def test_default_test_by_type_and_size(rows: int, expected: dict[str, str]) -> None:
    profile = profile_of(mixed_table(rows, seed=1))
    assert {name: default_test(column) for name, column in profile.columns.items()} == expected


def test_default_test_counts_non_missing_rows() -> None:
    values = np.where(np.arange(2000) % 2 == 0, np.nan, np.random.default_rng(0).normal(size=2000))
    profile = profile_of(pa.table({"x": values}))
    assert default_test(profile.columns["x"]) == "ks"  # 1000 values, 1000 missing


def plan(config: DriftCheckConfig, rows: int = 2000) -> dict[str, PlannedTest]:
    profile = profile_of(mixed_table(rows, seed=2))
    features, _ = selected_features(profile, config, current_kinds(mixed_table(5, seed=3).schema))
    return {p.feature: p for p in plan_tests(profile, config, features)}


def test_feature_entry_beats_wildcard_beats_default() -> None:
    config = DriftCheckConfig(
        tests=[FeatureTest(feature="*", test="psi", threshold=0.3), FeatureTest(feature="age", test="ks")]
    )
    plans = plan(config)
    assert (plans["age"].test, plans["age"].threshold, plans["age"].origin) == ("ks", 0.05, "feature")
    assert (plans["city"].test, plans["city"].threshold, plans["city"].origin) == ("psi", 0.3, "wildcard")


def test_wildcard_numeric_test_leaves_categorical_features_to_defaults() -> None:
    plans = plan(DriftCheckConfig(tests=[FeatureTest(feature="*", test="wasserstein", threshold=0.2)]))
    assert (plans["age"].test, plans["age"].threshold) == ("wasserstein", 0.2)
    assert (plans["city"].test, plans["city"].origin) == ("jensenshannon", "default")


def test_named_numeric_test_on_categorical_feature_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="needs a numeric feature"):
        plan(DriftCheckConfig(tests=[FeatureTest(feature="city", test="ks")]))


def test_p_value_threshold_above_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="p-value"):
        FeatureTest(feature="age", test="ks", threshold=5)
    # a config built without validation is refused by the engine too
    unchecked = FeatureTest.model_construct(feature="age", test="ks", threshold=5)
    with pytest.raises(UsageError, match="p-value"):
        plan(DriftCheckConfig.model_construct(tests=[unchecked], drift_share=0.5, features=None))


def test_duplicate_and_unknown_entries_are_refused() -> None:
    twice = [FeatureTest(feature="age", test="ks"), FeatureTest(feature="age", test="psi")]
    with pytest.raises(ValidationError, match="twice"):
        DriftCheckConfig(tests=twice)
    with pytest.raises(UsageError, match="twice"):
        plan(DriftCheckConfig.model_construct(tests=twice, drift_share=0.5, features=None))
    with pytest.raises(UsageError, match="not a checked feature"):
        plan(DriftCheckConfig(tests=[FeatureTest(feature="height", test="ks")]))


def test_configured_features_must_exist_on_both_sides() -> None:
    assert list(plan(DriftCheckConfig(features=["city", "age"]))) == ["city", "age"]
    with pytest.raises(SchemaMismatchError, match="not a column of the reference"):
        plan(DriftCheckConfig(features=["height"]))


def test_default_features_skip_columns_the_current_data_lacks() -> None:
    profile = profile_of(mixed_table(50, seed=4).append_column("label", pa.array(np.zeros(50))))
    features, left_out = selected_features(
        profile, DriftCheckConfig(), current_kinds(mixed_table(5, seed=5).schema)
    )
    assert "label" not in features
    assert left_out == {"label": "not in the current data"}


def test_kind_mismatch_is_a_schema_error() -> None:
    profile = profile_of(mixed_table(50, seed=6))
    current = mixed_table(5, seed=7).set_column(0, "age", pa.array(["old"] * 5))
    with pytest.raises(SchemaMismatchError, match="'age' is numeric in the reference but categorical"):
        selected_features(profile, DriftCheckConfig(), current_kinds(current.schema))


def test_metadata_columns_are_never_features() -> None:
    schema = pa.schema(
        [("_timestamp", pa.timestamp("ms")), ("_output.score", pa.float32()), ("x", pa.float32())]
    )
    assert current_kinds(schema) == {"x": "numeric"}


def test_verdict_rules() -> None:
    assert is_drifted("ks", 0.01, 0.05) and not is_drifted("ks", 0.05, 0.05)  # p < threshold
    assert is_drifted("chi2", 0.0, 0.05)
    for test in ("psi", "wasserstein", "jensenshannon"):
        assert is_drifted(test, 0.1, 0.1) and not is_drifted(test, 0.099, 0.1)  # score >= threshold
    assert DEFAULT_THRESHOLDS == {
        "ks": 0.05,
        "chi2": 0.05,
        "psi": 0.2,
        "wasserstein": 0.1,
        "jensenshannon": 0.1,
    }


def outcome(name: str, drifted: bool, skipped: str | None = None) -> FeatureOutcome:
    planned = PlannedTest(name, "numeric", "wasserstein", 0.1, "default")
    result = FeatureOutcome.untested(planned, 10, 0, 10, 0)
    result.drifted, result.skipped = drifted, skipped
    return result


def test_dataset_drift_when_share_reaches_threshold() -> None:
    outcomes = [outcome("a", True), outcome("b", False), outcome("c", True), outcome("d", False)]
    assert dataset_verdict(outcomes, 0.5).dataset_drift  # 2/4 reaches 0.5
    assert not dataset_verdict(outcomes, 0.51).dataset_drift
    with_skipped = [*outcomes, outcome("e", False, skipped="no values in the current data")]
    verdict = dataset_verdict(with_skipped, 0.5)
    assert (verdict.tested_features, verdict.drift_share, verdict.dataset_drift) == (4, 0.5, True)
    assert not dataset_verdict([outcome("e", False, skipped="x")], 0.1).dataset_drift
