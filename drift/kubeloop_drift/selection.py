"""Which test, with which threshold, checks each feature: defaults, overrides, and verdicts.

Defaults (as Evidently's data-drift preset, so that large samples do not cry wolf):

=========================================  ==========================  ==================
feature (reference rows = non-missing)     <= 1000 reference rows       > 1000 rows
=========================================  ==========================  ==================
numeric, more than 5 distinct values       ks (p < 0.05)                wasserstein (>= 0.1)
numeric with <= 5 distinct values,          chi2 (p < 0.05)              jensenshannon (>= 0.1)
or categorical
=========================================  ==========================  ==================

p-value tests (ks, chi2) flag ever tinier shifts as samples grow, so large samples get
distance tests with calibrated thresholds. A test named without a threshold uses its default:
ks 0.05, chi2 0.05, psi 0.2, wasserstein 0.1 (in reference standard deviations),
jensenshannon 0.1 (natural log, range 0..0.833).

Score and verdict: for p-value tests the score is the p-value and the feature drifted when
p < threshold; for distance tests (psi, wasserstein, jensenshannon) it drifted when
score >= threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from kubeloop.api.drift import DriftCheckConfig, FeatureTest, StatTest
from kubeloop_drift.columns import ColumnKind, column_kind
from kubeloop_drift.errors import SchemaMismatchError, UsageError
from kubeloop_drift.profile import ColumnProfile, ReferenceProfile, is_feature_column

P_VALUE_TESTS: frozenset[StatTest] = frozenset({"ks", "chi2"})
NUMERIC_ONLY_TESTS: frozenset[StatTest] = frozenset({"ks", "wasserstein"})
DEFAULT_THRESHOLDS: dict[StatTest, float] = {
    "ks": 0.05,
    "chi2": 0.05,
    "psi": 0.2,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}
SMALL_SAMPLE_MAX_ROWS = 1000
FEW_VALUES_MAX = 5
WILDCARD = "*"


@dataclass(frozen=True)
class PlannedTest:
    """The test one feature gets."""

    feature: str
    kind: ColumnKind
    test: StatTest
    threshold: float
    origin: Literal["default", "feature", "wildcard"]


def default_test(column: ColumnProfile) -> StatTest:
    """The test a feature gets when the configuration names none (see the module's table)."""
    small = column.count <= SMALL_SAMPLE_MAX_ROWS
    if column.kind == "numeric" and column.distinct > FEW_VALUES_MAX:
        return "ks" if small else "wasserstein"
    return "chi2" if small else "jensenshannon"


def is_drifted(test: StatTest, score: float, threshold: float) -> bool:
    """p-value tests: p < threshold; distance tests: score >= threshold."""
    return score < threshold if test in P_VALUE_TESTS else score >= threshold


def current_kinds(schema: pa.Schema) -> dict[str, ColumnKind | Literal["null"] | None]:
    """The kind of each feature column of the current data ('null' when it holds only nulls)."""
    return {
        f.name: "null" if pa.types.is_null(f.type) else column_kind(f.type)
        for f in schema
        if is_feature_column(f.name)
    }


def selected_features(
    profile: ReferenceProfile,
    config: DriftCheckConfig,
    current_kinds: Mapping[str, ColumnKind | Literal["null"] | None],
) -> tuple[list[str], dict[str, str]]:
    """The features to check, and those left out with the reason.

    With ``features`` configured, each must be a supported reference column present in the
    current data (else SchemaMismatchError). Without, every reference feature is checked that
    the current data has; one missing there is reported as not checked (a reference often
    holds a training label that live payloads lack). A current column of nulls only (CSV
    gives it no type) matches any kind: its values count as missing.
    """
    left_out: dict[str, str] = dict(profile.unsupported)
    if config.features is not None:
        for name in config.features:
            if name in profile.unsupported:
                raise SchemaMismatchError(f"feature {name!r}: {profile.unsupported[name]}")
            if name not in profile.columns:
                raise SchemaMismatchError(f"feature {name!r} is not a column of the reference")
            if name not in current_kinds:
                raise SchemaMismatchError(f"feature {name!r} is not a column of the current data")
        names = list(dict.fromkeys(config.features))
        left_out = {}
    else:
        names = [name for name in profile.columns if name in current_kinds]
        left_out.update(
            {name: "not in the current data" for name in profile.columns if name not in current_kinds}
        )
    for name in names:
        reference_kind, current_kind = profile.columns[name].kind, current_kinds[name]
        if current_kind not in (reference_kind, "null"):
            raise SchemaMismatchError(
                f"feature {name!r} is {reference_kind} in the reference but {current_kind or 'unsupported'} "
                "in the current data"
            )
    if not names:
        raise SchemaMismatchError("no feature of the reference is in the current data")
    return names, left_out


def plan_tests(profile: ReferenceProfile, config: DriftCheckConfig, features: list[str]) -> list[PlannedTest]:
    """One test per feature: its own entry, else the '*' entry when it applies, else the default."""
    by_feature = _entries_by_feature(config.tests)
    for name in by_feature:
        if name != WILDCARD and name not in features:
            raise UsageError(f"config names test for {name!r}, which is not a checked feature")
    plans = []
    for name in features:
        column = profile.columns[name]
        entry, origin = by_feature.get(name), "feature"
        if entry is None:
            entry, origin = by_feature.get(WILDCARD), "wildcard"
            if entry is not None and not _applies(entry.test, column.kind):
                entry = None
        if entry is None:
            test = default_test(column)
            plans.append(PlannedTest(name, column.kind, test, DEFAULT_THRESHOLDS[test], "default"))
            continue
        if not _applies(entry.test, column.kind):
            raise UsageError(f"test {entry.test} needs a numeric feature; {name!r} is {column.kind}")
        threshold = DEFAULT_THRESHOLDS[entry.test] if entry.threshold is None else entry.threshold
        plans.append(
            PlannedTest(
                name, column.kind, entry.test, threshold, "feature" if origin == "feature" else "wildcard"
            )
        )
    return plans


def _applies(test: StatTest, kind: ColumnKind) -> bool:
    return kind == "numeric" or test not in NUMERIC_ONLY_TESTS


def _entries_by_feature(entries: list[FeatureTest]) -> dict[str, FeatureTest]:
    found: dict[str, FeatureTest] = {}
    for entry in entries:
        if entry.feature in found:
            raise UsageError(f"config names feature {entry.feature!r} twice in tests")
        if entry.test in P_VALUE_TESTS and entry.threshold is not None and entry.threshold > 1:
            raise UsageError(f"threshold {entry.threshold} for {entry.test} is a p-value and must be <= 1")
        found[entry.feature] = entry
    return found
