"""TreeSHAP from the ONNX ensemble against shap.TreeExplainer on the scikit-learn model it came from."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import shap

from kubeloop_serving.explain.errors import ExplainerUnavailableError
from kubeloop_serving.explain.trees import parse_tree_ensemble
from kubeloop_serving.explain.treeshap import TreeShap, shapley_weights
from tests.unit.serving.conftest import tabular_model
from tests.unit.serving.explain_models import FEATURES, ExportedModel, trained

pytestmark = pytest.mark.unit
PARITY = 1e-6


def ours(exported: ExportedModel) -> tuple[TreeShap, np.ndarray[Any, Any]]:
    ensemble = parse_tree_ensemble(onnx.load_from_string(exported.onnx_bytes), len(FEATURES))
    explainer = TreeShap.fit(ensemble, exported.background)
    return explainer, explainer.explain(exported.rows)


def reference(exported: ExportedModel) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """shap's values [rows, features, outputs] and base values [outputs], interventional."""
    explainer = shap.TreeExplainer(
        exported.sklearn.estimator,
        data=exported.background.astype(np.float64),
        feature_perturbation="interventional",
    )
    values = np.asarray(explainer.shap_values(exported.rows.astype(np.float64)))
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    return (values[:, :, None] if values.ndim == 2 else values), base


def onnx_output(exported: ExportedModel, name: str) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(exported.onnx_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([name], {"input": exported.rows})[0], dtype=np.float64)


@pytest.mark.parametrize(
    ("algorithm", "task", "classes", "columns"),
    [
        ("gradient_boosting", "classification", 2, slice(1, 2)),  # shap: the positive class's log-odds
        ("random_forest", "classification", 2, slice(None)),
        ("random_forest", "classification", 3, slice(None)),
        ("gradient_boosting", "regression", 0, slice(None)),
        ("random_forest", "regression", 0, slice(None)),
    ],
)
def test_matches_shap_tree_explainer(algorithm: Any, task: str, classes: int, columns: slice) -> None:
    exported = trained(algorithm, task, max(classes, 2), n_estimators=30)
    explainer, values = ours(exported)
    expected_values, expected_base = reference(exported)
    assert values[:, :, columns].shape == expected_values.shape
    assert np.abs(values[:, :, columns] - expected_values).max() < PARITY
    assert np.abs(explainer.expected_value[columns] - expected_base).max() < PARITY
    assert np.abs(values).max() > 1e-3  # not trivially zero


def test_values_add_up_to_what_onnxruntime_computes() -> None:
    """base + sum of attributions is the raw score; post_transform of it is the served output."""
    boosted = trained("gradient_boosting", "classification", 2, n_estimators=30)
    explainer, values = ours(boosted)
    raw = explainer.expected_value + values.sum(axis=1)
    assert explainer.ensemble.post_transform == "LOGISTIC"
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), onnx_output(boosted, "probabilities"), atol=1e-6)
    forest = trained("random_forest", "regression", n_estimators=20)
    explainer, values = ours(forest)
    raw = explainer.expected_value + values.sum(axis=1)
    np.testing.assert_allclose(raw, onnx_output(forest, "variable"), atol=1e-5)


def test_multiclass_boosting_adds_up_per_class() -> None:
    """shap has no multiclass GradientBoostingClassifier; softmax of our raw scores is the output."""
    exported = trained("gradient_boosting", "classification", 3, n_estimators=10)
    explainer, values = ours(exported)
    assert values.shape == (len(exported.rows), len(FEATURES), 3)
    raw = explainer.expected_value + values.sum(axis=1)
    softmax = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, onnx_output(exported, "probabilities"), atol=1e-6)


def test_shapley_weights_of_small_games() -> None:
    inside, outside = shapley_weights(3)
    assert inside[1, 0] == 1.0 and outside[0, 1] == 1.0  # a lone feature takes the whole difference
    assert inside[1, 1] == pytest.approx(0.5) and outside[1, 1] == pytest.approx(0.5)
    assert inside[2, 1] == pytest.approx(1 / 6) and outside[2, 1] == pytest.approx(1 / 3)


def test_a_model_that_is_not_a_tree_ensemble_is_refused(tmp_path: Any) -> None:
    model = onnx.load(str(tabular_model(tmp_path / "linear.onnx")))
    with pytest.raises(ExplainerUnavailableError, match="TreeEnsemble"):
        parse_tree_ensemble(model, 4)
