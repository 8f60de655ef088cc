"""Realized performance from delayed labels: metrics, join and coverage, groups, fairness, bootstrap."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, roc_auc_score

from kubeloop_drift.performance.bootstrap import bootstrap_interval
from kubeloop_drift.performance.groups import fairness, per_group
from kubeloop_drift.performance.join import Predictions, join_labels
from kubeloop_drift.performance.labels import label_set, prediction_keys
from kubeloop_drift.performance.metrics import compute

pytestmark = pytest.mark.unit
HOUR_MS = 3_600_000.0
NOW_MS = 1_800_000_000_000.0


def predictions(count: int, ages_ms: np.ndarray, predicted: np.ndarray, **extra: object) -> Predictions:
    ids = pa.array([f"r{i}" for i in range(count)])
    return Predictions(
        prediction_keys(ids, pa.array(np.zeros(count, np.int32))),
        NOW_MS - ages_ms,
        predicted,
        **extra,  # type: ignore[arg-type]
    )


def labels_for(ids: list[str], values: list[float], stamps_ms: list[float] | None = None) -> pa.Table:
    columns: dict[str, pa.Array] = {"request_id": pa.array(ids), "label": pa.array(values, pa.float64())}
    if stamps_ms is not None:
        columns["timestamp"] = pa.array(np.array(stamps_ms, "datetime64[ms]"), pa.timestamp("ms", tz="UTC"))
    return pa.table(columns)


def test_binary_metrics_equal_scikit_learns_on_the_joined_rows() -> None:
    rng = np.random.default_rng(1)
    count = 2000
    score = rng.uniform(size=count)
    truth = (rng.uniform(size=count) < score).astype(np.float64)
    predicted = (score >= 0.5).astype(np.int64)
    window = predictions(count, np.full(count, 2 * HOUR_MS), predicted, score=score)
    labelled = rng.permutation(count)[:1200]  # 40% of the labels never come
    source = label_set(labels_for([f"r{i}" for i in labelled], truth[labelled].tolist()))
    joined = join_labels(window, source, NOW_MS, HOUR_MS)
    assert joined.labelled == 1200 and joined.matured == count
    y_true, y_pred, y_score = joined.labels, joined.predictions.predicted, joined.predictions.score
    found = compute("binary", ["accuracy", "f1", "roc_auc"], y_true, y_pred.astype(np.float64), y_score)
    keep = np.sort(labelled)
    assert np.array_equal(np.sort(y_true), np.sort(truth[keep]))
    assert found["accuracy"] == pytest.approx(accuracy_score(truth[keep], predicted[keep]), abs=1e-12)
    assert found["f1"] == pytest.approx(f1_score(truth[keep], predicted[keep]), abs=1e-12)
    assert found["roc_auc"] == pytest.approx(roc_auc_score(truth[keep], score[keep]), abs=1e-12)


def test_roc_auc_with_tied_scores_and_multiclass_and_regression_equal_scikit_learns() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 500).astype(np.float64)
    tied = np.round(rng.uniform(size=500), 1)
    auc = compute("binary", ["roc_auc"], truth, truth, tied)["roc_auc"]
    assert auc == pytest.approx(roc_auc_score(truth, tied), abs=1e-12)
    classes, guessed = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    multi = compute("multiclass", ["accuracy", "f1"], classes, guessed, None)
    assert multi["accuracy"] == pytest.approx(accuracy_score(classes, guessed))
    assert multi["f1"] == pytest.approx(f1_score(classes, guessed, average="macro"))
    actual, estimate = rng.normal(size=400), rng.normal(size=400)
    errors = compute("regression", ["mae", "rmse"], actual, estimate, None)
    assert errors["mae"] == pytest.approx(mean_absolute_error(actual, estimate))
    assert errors["rmse"] == pytest.approx(np.sqrt(mean_squared_error(actual, estimate)))


def test_coverage_counts_matured_predictions_only_and_late_or_missing_labels() -> None:
    # r0-r5 are 3 h old (matured with a 1 h maturity), r6-r9 are 10 min old (still maturing)
    ages = np.array([3 * HOUR_MS] * 6 + [HOUR_MS / 6] * 4)
    window = predictions(10, ages, np.ones(10, np.int64))
    # labels for r0, r1, r2 (matured), r7 (early: its prediction is still maturing); r3-r5 missing
    source = label_set(labels_for(["r0", "r1", "r2", "r7", "nobody"], [1, 0, 1, 1, 0]))
    joined = join_labels(window, source, NOW_MS, HOUR_MS)
    assert (joined.matured, joined.labelled, joined.early) == (6, 3, 1)
    assert joined.coverage == pytest.approx(0.5)
    assert joined.labels.tolist() == [1.0, 0.0, 1.0]
    # the labels of r3-r5 land later: coverage reaches 1, and r7 counts once it matured
    later = label_set(labels_for(["r0", "r1", "r2", "r3", "r4", "r5", "r7"], [1, 0, 1, 1, 1, 0, 1]))
    assert join_labels(window, later, NOW_MS, HOUR_MS).coverage == 1.0
    matured_all = join_labels(window, later, NOW_MS + HOUR_MS, HOUR_MS)
    assert (matured_all.matured, matured_all.labelled) == (10, 7)
    assert np.isnan(join_labels(predictions(1, np.zeros(1), np.ones(1)), later, NOW_MS, HOUR_MS).coverage)


def test_the_newest_label_of_a_prediction_wins_and_rows_are_told_apart() -> None:
    table = pa.table(
        {
            "request_id": ["a", "a", "a", "b"],
            "row": pa.array([0, 0, 1, 0], pa.int32()),
            "label": [0.0, 1.0, 5.0, 2.0],
            "timestamp": pa.array(
                np.array([2000, 1000, 1, 1], "datetime64[ms]"), pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    found = {(r, row): label for r, row, label, _ in label_set(table).records()}
    assert found == {("a", 0): 0.0, ("a", 1): 5.0, ("b", 0): 2.0}


def test_groups_below_the_minimum_are_reported_but_excluded_and_fairness_equals_fairlearns() -> None:
    rng = np.random.default_rng(5)
    sizes = {"a": 400, "b": 300, "c": 12}
    groups = np.array([g for g, n in sizes.items() for _ in range(n)], object)
    count = len(groups)
    truth = rng.integers(0, 2, count).astype(np.float64)
    bias = np.where(groups == "a", 0.25, np.where(groups == "b", -0.1, 0.6))
    predicted = (rng.uniform(size=count) + bias > 0.5).astype(np.float64)
    results = per_group("sex", groups, "binary", ["accuracy"], truth, predicted, None, min_group_size=30)
    assert [(r.group, r.rows, r.included) for r in results] == [
        ("a", 400, True),
        ("b", 300, True),
        ("c", 12, False),
    ]
    assert results[2].metrics == {}
    in_a = groups == "a"
    assert results[0].metrics["accuracy"] == pytest.approx(accuracy_score(truth[in_a], predicted[in_a]))
    found = fairness(truth, predicted, results, groups)
    big = groups != "c"
    expected_dp = demographic_parity_difference(truth[big], predicted[big], sensitive_features=groups[big])
    expected_eo = equalized_odds_difference(truth[big], predicted[big], sensitive_features=groups[big])
    assert found["demographic_parity_difference"] == pytest.approx(expected_dp, abs=1e-12)
    assert found["equalized_odds_difference"] == pytest.approx(expected_eo, abs=1e-12)
    with_small = demographic_parity_difference(truth, predicted, sensitive_features=groups)
    assert with_small != pytest.approx(expected_dp), "the small group would have changed the answer"


def test_bootstrap_is_seeded_and_brackets_the_statistic() -> None:
    values = np.random.default_rng(0).normal(3.0, 1.0, 500)

    def mean(index: np.ndarray) -> float:
        return float(values[index].mean())

    first = bootstrap_interval(mean, len(values), 300, seed=7)
    assert first == bootstrap_interval(mean, len(values), 300, seed=7)
    assert first != bootstrap_interval(mean, len(values), 300, seed=8)
    low, high = first
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(500), rel=0.25)
    assert np.isnan(bootstrap_interval(mean, 0, 300, seed=7)[0])
