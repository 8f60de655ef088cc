"""The fairness gate's numbers, without a run: a hand-computed case, fairlearn's own functions on the
same rows (small groups left out), more than two classes, too few groups; the sensitive columns
never become features."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from kubeloop.api.fairness import Fairness
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.fairness import assess
from kubeloop_trainer.features import MISSING, build_features

pytestmark = pytest.mark.unit


def gate(dpd: float | None = 0.1, eod: float | None = 0.1, min_group_size: int = 1, **extra: Any) -> Fairness:
    thresholds = {"demographicParityDifference": dpd, "equalizedOddsDifference": eod}
    return Fairness.model_validate(
        {
            "sensitiveAttributes": extra.pop("attributes", ["sex"]),
            "thresholds": {k: v for k, v in thresholds.items() if v is not None},
            "minGroupSize": min_group_size,
            **extra,
        }
    )


def one_hot(predicted: list[int] | npt.NDArray[Any], n_classes: int = 2) -> npt.NDArray[np.float64]:
    """Probabilities whose argmax is ``predicted``."""
    probabilities: npt.NDArray[np.float64] = np.eye(n_classes)[np.asarray(predicted)] * 0.8 + 0.2 / n_classes
    return probabilities


def column(values: list[str]) -> npt.NDArray[np.str_]:
    return np.array(values, dtype=np.str_).reshape(-1, 1)


def test_a_case_computed_by_hand() -> None:
    # group A: labels 1 1 0 0, predicted 1 0 0 0 -> selection 1/4, TPR 1/2, FPR 0,   accuracy 3/4
    # group B: labels 1 1 0 0, predicted 1 1 1 1 -> selection 1,   TPR 1,   FPR 1,   accuracy 1/2
    # dpd = 1 - 1/4 = 0.75; eod = max(|1 - 1/2|, |1 - 0|) = 1.0
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    predicted = [1, 0, 0, 0, 1, 1, 1, 1]
    sex = column(["A"] * 4 + ["B"] * 4)
    report = assess(gate(), y_true, one_hot(predicted), sex, ["no", "yes"])
    result = report.result
    assert (result.demographic_parity_difference, result.equalized_odds_difference) == (0.75, 1.0)
    a, b = sorted(result.groups, key=lambda g: g.group)
    assert (a.group, a.count, a.accuracy, a.selection_rate, a.true_positive_rate, a.false_positive_rate) == (
        "sex=A",
        4,
        0.75,
        0.25,
        0.5,
        0.0,
    )
    assert (b.selection_rate, b.true_positive_rate, b.false_positive_rate, b.accuracy) == (1.0, 1.0, 1.0, 0.5)
    assert result.outcome == "Failed" and result.positive_class == "yes" and result.rows == 8
    assert "demographicParityDifference 0.75 > 0.1" in result.message
    assert "selection rate of class 'yes': sex=A 0.25 vs sex=B 1" in result.message
    assert "equalizedOddsDifference 1 > 0.1 (false positive rate of class 'yes': sex=A 0 vs sex=B 1)" in (
        result.message
    )


def test_thresholds_decide_and_an_unset_one_is_not_checked() -> None:
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    predicted = [1, 0, 0, 0, 1, 1, 1, 1]
    sex = column(["A"] * 4 + ["B"] * 4)
    loose = assess(gate(dpd=0.75, eod=1.0), y_true, one_hot(predicted), sex, ["no", "yes"]).result
    assert loose.outcome == "Passed" and loose.message.startswith("within thresholds")
    parity_only = assess(gate(dpd=0.8, eod=None), y_true, one_hot(predicted), sex, ["no", "yes"]).result
    assert parity_only.outcome == "Passed" and "equalizedOdds" not in parity_only.message
    assert parity_only.equalized_odds_difference == 1.0  # still measured and reported
    odds_only = assess(gate(dpd=None, eod=0.99), y_true, one_hot(predicted), sex, ["no", "yes"]).result
    assert odds_only.outcome == "Failed" and "demographicParity" not in odds_only.message


def test_equal_to_fairlearn_with_small_groups_left_out() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    groups = rng.choice(["a", "b", "c", "tiny"], size=n, p=[0.5, 0.3, 0.19, 0.01])
    y_true = (rng.random(n) < np.where(groups == "a", 0.6, 0.4)).astype(int)
    predicted = np.where(rng.random(n) < 0.8, y_true, 1 - y_true)
    predicted[groups == "tiny"] = 1  # would be the extreme group, if it counted
    result = assess(gate(min_group_size=50), y_true, one_hot(predicted), column(list(groups)), [0, 1]).result

    kept = groups != "tiny"
    expected_dpd = demographic_parity_difference(
        y_true[kept], predicted[kept], sensitive_features=groups[kept]
    )
    expected_eod = equalized_odds_difference(y_true[kept], predicted[kept], sensitive_features=groups[kept])
    assert result.demographic_parity_difference == pytest.approx(expected_dpd, abs=1e-12)
    assert result.equalized_odds_difference == pytest.approx(expected_eod, abs=1e-12)
    everything = demographic_parity_difference(y_true, predicted, sensitive_features=groups)
    assert everything > expected_dpd + 0.2  # the tiny group would have dominated
    tiny = next(g for g in result.groups if g.group == "sex=tiny")
    assert tiny.excluded and tiny.count == int((groups == "tiny").sum()) and tiny.selection_rate == 1.0
    assert [g.excluded for g in result.groups].count(True) == 1
    assert [g.count for g in result.groups] == sorted((g.count for g in result.groups), reverse=True)
    assert f"left out (fewer than 50 rows): sex=tiny ({tiny.count})" in result.message


def test_intersections_of_two_attributes_are_the_groups() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    sex, band = rng.choice(["F", "M"], size=n), rng.choice(["0", "1"], size=n)
    y_true = rng.integers(0, 2, size=n)
    predicted = np.where((sex == "F") & (band == "1"), 0, y_true)
    sensitive = np.stack([sex, band], axis=1)
    result = assess(
        gate(attributes=["sex", "age_band"]), y_true, one_hot(predicted), sensitive, [0, 1]
    ).result
    assert {g.group for g in result.groups} == {f"sex={s}, age_band={b}" for s in "FM" for b in "01"}
    expected = demographic_parity_difference(
        y_true, predicted, sensitive_features={"sex": sex, "age_band": band}
    )
    assert result.demographic_parity_difference == pytest.approx(expected, abs=1e-12)
    assert "sex=F, age_band=1" in result.message


def test_more_than_two_classes_one_vs_rest_the_worst_class_shown() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    sex = rng.choice(["F", "M"], size=n)
    y_true = rng.integers(0, 3, size=n)
    predicted = y_true.copy()
    # half of F's class-a rows are predicted c: a's TPR for F halves (eod ~0.5), c's FPR grows (~0.25)
    predicted[(sex == "F") & (y_true == 0) & (rng.random(n) < 0.5)] = 2
    result = assess(gate(), y_true, one_hot(predicted, 3), column(list(sex)), ["a", "b", "c"]).result
    dpd = [
        demographic_parity_difference(y_true == c, predicted == c, sensitive_features=sex) for c in range(3)
    ]
    eod = [equalized_odds_difference(y_true == c, predicted == c, sensitive_features=sex) for c in range(3)]
    assert result.demographic_parity_difference == pytest.approx(max(dpd), abs=1e-12)
    assert result.equalized_odds_difference == pytest.approx(max(eod), abs=1e-12)
    assert eod[0] > 0.4 and eod[0] > eod[2] > 0.15 and eod[1] < 0.1
    assert result.positive_class == "a" and result.outcome == "Failed"
    assert "true positive rate of class 'a': sex=F" in result.message
    named = assess(
        gate(positive_class="c"), y_true, one_hot(predicted, 3), column(list(sex)), ["a", "b", "c"]
    )
    assert named.result.positive_class == "c" and len(named.per_class) == 1
    assert named.result.demographic_parity_difference == pytest.approx(dpd[2], abs=1e-12)
    assert named.result.equalized_odds_difference == pytest.approx(eod[2], abs=1e-12)


def test_fewer_than_two_groups_big_enough_is_not_evaluable() -> None:
    y_true = np.array([1, 0] * 20)
    sex = column(["F"] * 35 + ["M"] * 5)
    result = assess(gate(min_group_size=30), y_true, one_hot(y_true), sex, [0, 1]).result
    assert result.outcome == "NotEvaluable" and not result.passed
    assert result.demographic_parity_difference is None and result.equalized_odds_difference is None
    assert "fewer than 2 groups of sex have at least 30 test rows: sex=F (35), sex=M (5)" in result.message
    assert [g.excluded for g in result.groups] == [False, True]


def test_a_positive_class_the_data_lacks_is_bad_data() -> None:
    with pytest.raises(BadDataError, match="positiveClass 'approved'"):
        assess(gate(positive_class="approved"), np.array([0, 1]), one_hot([0, 1]), column(["F", "M"]), [0, 1])


def test_sensitive_columns_are_kept_out_of_the_features() -> None:
    table = pa.table(
        {
            "f0": [0.5, 1.5, 2.5],
            "sex": ["F", None, "M"],
            "age_band": [0, 1, 2],  # numeric: a feature, unless named sensitive
            "label": ["x", "y", "x"],
        }
    )
    features = build_features(table, "label", "classification", ["sex", "age_band"])
    assert features.feature_names == ["f0"] and features.x.shape == (3, 1)
    assert features.sensitive is not None
    assert features.sensitive.tolist() == [["F", "0"], [MISSING, "1"], ["M", "2"]]
    plain = build_features(table.drop_columns(["sex"]), "label", "classification")
    assert plain.feature_names == ["f0", "age_band"] and plain.sensitive is None
    with pytest.raises(BadDataError, match=r"sensitive attributes \['race'\] not in the dataset"):
        build_features(table, "label", "classification", ["race"])
