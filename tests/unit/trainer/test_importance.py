"""Training-time global importance: TreeSHAP values equal shap's own explainer on the same model,
per class; other models get permutation SHAP that ranks the informative features first; the plot
is a PNG."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import shap
from matplotlib import image

from kubeloop.api.training import Importance
from kubeloop_trainer.features import build_features
from kubeloop_trainer.importance import GlobalImportance, explain, plot
from kubeloop_trainer.model import Algorithm, Recipe
from kubeloop_trainer.sklearn_models import SklearnModel, fit_sklearn
from kubeloop_trainer.splits import Part
from tests.unit.trainer.builders import additive, blobs, linear

pytestmark = pytest.mark.unit


def fitted(
    algorithm: Algorithm, table_rows: int = 400, n_classes: int = 3
) -> tuple[SklearnModel, Part, list[str], list[str]]:
    table = blobs(n_rows=table_rows, n_classes=n_classes) if n_classes != 2 else additive(n_rows=table_rows)
    features = build_features(table, "label", "classification")
    recipe = Recipe(
        algorithm=algorithm,
        task="classification",
        n_features=features.x.shape[1],
        n_classes=features.n_classes,
        hyperparameters={"n_estimators": 20} if algorithm != "logistic_regression" else {},
    )
    part = Part(features.x, features.y)
    return fit_sklearn(recipe, part), part, features.feature_names, [str(c) for c in features.classes]


@pytest.mark.parametrize(("algorithm", "n_classes"), [("random_forest", 3), ("gradient_boosting", 2)])
def test_tree_models_get_shaps_own_tree_values(algorithm: Algorithm, n_classes: int) -> None:
    model, data, names, classes = fitted(algorithm, n_classes=n_classes)
    settings = Importance(sample_rows=400)  # every row: no sampling, so the rows are the same
    result = explain(
        model,
        settings,
        test_x=data.x,
        train_x=data.x,
        feature_names=names,
        classes=classes,
        task="classification",
        seed=0,
    )
    reference = np.asarray(shap.TreeExplainer(model.estimator).shap_values(data.x))
    expected = np.abs(reference).mean(axis=0).reshape(len(names), -1).T
    assert result.method == "tree" and result.rows == 400 and result.features == names
    if n_classes == 2:  # binary gradient boosting: one output, log-odds of the second class
        assert list(result.outputs) == [classes[1]] and result.unit == "log-odds"
    else:
        assert list(result.outputs) == classes and result.unit == "probability"
    np.testing.assert_allclose(np.array(list(result.outputs.values())), expected, rtol=0, atol=1e-12)


def test_other_models_get_permutation_shap_on_a_bounded_sample() -> None:
    model, data, names, classes = fitted("logistic_regression", table_rows=600, n_classes=2)
    result = explain(
        model,
        Importance(sample_rows=60, background_rows=20),
        test_x=data.x,
        train_x=data.x,
        feature_names=names,
        classes=classes,
        task="classification",
        seed=0,
    )
    assert result.method == "permutation" and result.rows == 60 and set(result.outputs) == set(classes)
    ranked = [name for name, _ in result.ranked()]
    assert ranked[-1] == "f3"  # the noise feature (additive(): labels from f0 + f1 + f2)
    # two classes: the probabilities sum to one, so both get the same importance
    first, second = result.outputs.values()
    np.testing.assert_allclose(first, second, rtol=1e-6)


def test_the_artifacts() -> None:
    importance = GlobalImportance(
        method="tree",
        unit="probability",
        rows=10,
        features=["a", "b", "c"],
        outputs={"x": [0.1, 0.3, 0.2], "y": [0.3, 0.1, 0.0]},
    )
    (first, a), (second, b) = importance.ranked(2)  # a and b tie at 0.2: the first listed leads
    assert (first, second) == ("a", "b") and a == pytest.approx(0.2) and b == pytest.approx(0.2)
    assert json.loads(importance.to_json())["meanAbsShap"]["y"] == {"a": 0.3, "b": 0.1, "c": 0.0}
    png = plot(importance)
    pixels = image.imread(io.BytesIO(png), format="png")
    assert png.startswith(b"\x89PNG") and pixels.shape[0] > 100 and pixels.shape[1] == 800


def test_regression_has_one_output_in_the_target_units() -> None:
    features = build_features(linear(n_rows=300), "target", "regression")  # y = 10 x0 + 20 x1 + 30 x2
    recipe = Recipe(
        algorithm="random_forest",
        task="regression",
        n_features=3,
        n_classes=0,
        hyperparameters={"n_estimators": 20},
    )
    model = fit_sklearn(recipe, Part(features.x, features.y))
    result = explain(
        model,
        Importance(sample_rows=100),
        test_x=features.x,
        train_x=features.x,
        feature_names=features.feature_names,
        classes=[],
        task="regression",
        seed=0,
    )
    assert (result.method, result.unit, result.rows) == ("tree", "value", 100)
    assert list(result.outputs) == ["value"]
    assert [name for name, _ in result.ranked()] == ["x2", "x1", "x0"]
