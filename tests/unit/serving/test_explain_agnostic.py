"""Permutation SHAP and LIME through a real onnxruntime session, fed in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.explain import agnostic
from kubeloop_serving.explain.agnostic import batched, lime_weights, permutation_shap
from kubeloop_serving.explain.background import feature_matrix, load_background, read_table, sample_rows
from kubeloop_serving.explain.errors import ExplainerUnavailableError
from kubeloop_serving.explain.explainers import Explainers, model_function, model_target
from kubeloop_serving.model import OnnxModel
from tests.unit.serving.conftest import TABULAR_FEATURES, TABULAR_WEIGHTS, tabular_model
from tests.unit.serving.explain_models import FEATURES, trained, write_background

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    return OnnxModel.load(str(tabular_model(tmp_path_factory.mktemp("m") / "linear.onnx")), 1)


def counting(function: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def run(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(len(x))
        return np.asarray(function(x), dtype=np.float64)

    return run, calls


def test_permutation_shap_adds_up_to_the_prediction(linear: OnnxModel) -> None:
    function = model_function(linear, model_target(linear.signature))
    rng = np.random.default_rng(0)
    background, x = rng.normal(size=(20, 4)), rng.normal(size=(3, 4))
    counted, calls = counting(function)
    values, base = permutation_shap(counted, background, x, budget=50)
    assert values.shape == (3, 4, 3) and base.shape == (3, 3)
    np.testing.assert_allclose(base + values.sum(axis=1), function(x), atol=1e-5)
    np.testing.assert_allclose(base[0], function(background).mean(axis=0), atol=1e-5)
    assert max(calls) > 20  # many masked rows per onnxruntime call, never one row at a time


def test_permutation_shap_of_a_linear_model_is_exact(linear: OnnxModel) -> None:
    """For f = x W + b with independent features, SHAP_i = W_i (x_i - mean background_i)."""
    function = model_function(linear, model_target(linear.signature))
    rng = np.random.default_rng(1)
    background, x = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    values, _ = permutation_shap(function, background, x, budget=200)
    weights = function(np.eye(4, dtype=np.float32)) - function(np.zeros((1, 4), np.float32))
    expected = (x - background.mean(axis=0))[:, :, None] * weights[None, :, :]
    np.testing.assert_allclose(values, expected, atol=1e-4)


def test_permutation_budget_below_shaps_floor_is_a_bad_request(linear: OnnxModel) -> None:
    function = model_function(linear, model_target(linear.signature))
    with pytest.raises(InvalidRequestError, match="at least 9"):
        permutation_shap(function, np.zeros((5, 4)), np.ones((1, 4)), budget=8)


def test_lime_returns_a_weight_per_feature_and_output_in_one_call_per_row(linear: OnnxModel) -> None:
    function = model_function(linear, model_target(linear.signature))
    rng = np.random.default_rng(2)
    background = rng.normal(size=(50, 4))
    counted, calls = counting(function)
    values, base = lime_weights(counted, background, rng.normal(size=(2, 4)), 300, list("abcd"))
    assert values.shape == (2, 4, 3) and base.shape == (2, 3)
    assert calls.count(300) == 2  # the row's perturbations reach the model together
    # the local surrogate of a linear model recovers its slopes, per background standard deviation
    slopes = TABULAR_WEIGHTS * background.std(axis=0)[:, None]
    np.testing.assert_allclose(values[0], slopes, atol=0.05)


def test_batched_splits_large_inputs() -> None:
    counted, calls = counting(lambda x: x[:, :1])
    result = batched(counted, batch_rows=4)(np.arange(10, dtype=np.float32).reshape(10, 1))
    assert calls == [4, 4, 2]
    np.testing.assert_array_equal(result.ravel(), np.arange(10))


def test_background_by_feature_names_sampled_reproducibly(tmp_path: Path) -> None:
    rows = np.arange(40, dtype=np.float32).reshape(8, 5)
    path = write_background(tmp_path / "ref.parquet", rows)
    loaded = load_background(str(path), FEATURES[::-1], 5, rows=3)
    assert loaded.shape == (3, 5)
    np.testing.assert_array_equal(loaded, load_background(f"file://{path}", FEATURES[::-1], 5, rows=3))
    assert set(loaded[:, -1]) <= set(rows[:, 0])  # columns picked by name, in the model's order
    with pytest.raises(ExplainerUnavailableError, match="lacks the model's features"):
        load_background(str(path), ("nope", *FEATURES[1:]), 5, rows=3)
    with pytest.raises(ExplainerUnavailableError, match="cannot read background"):
        load_background(str(tmp_path / "missing.parquet"), FEATURES, 5, rows=3)


def test_background_csv_folder_without_names_takes_numeric_columns(tmp_path: Path) -> None:
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x,y\nq,1,2\nr,3,4\n")
    (folder / "_SUCCESS").write_text("")
    table = read_table(str(folder))
    np.testing.assert_array_equal(feature_matrix(table, None, 2), [[1, 2], [3, 4]])
    with pytest.raises(ExplainerUnavailableError, match="no rows"):
        sample_rows(np.zeros((0, 2)), 5)


def test_auto_picks_tree_for_tree_ensembles_and_permutation_otherwise(
    tmp_path: Path, linear: OnnxModel
) -> None:
    exported = trained("gradient_boosting", "classification", n_estimators=10)
    path = exported.save(tmp_path, "gb")
    model = OnnxModel.load(str(path), 1)
    explainers = Explainers.build(str(path), model, exported.background, "auto")
    assert explainers.default == "tree" and explainers.available() == ("tree", "permutation", "lime")
    assert explainers.output_names == ("0", "1")  # from kubeloop.classes
    explanation = explainers.explain(exported.rows[:2], None, 100)
    assert explanation.values.shape == (2, 5, 2) and explanation.post_transform == "LOGISTIC"
    linear_path = tmp_path / "linear.onnx"
    tabular_model(linear_path)
    fallback = Explainers.build(str(linear_path), linear, np.zeros((4, 4), np.float32), "auto")
    assert fallback.default == "permutation" and fallback.target.feature_names == TABULAR_FEATURES
    with pytest.raises(ExplainerUnavailableError):
        Explainers.build(str(linear_path), linear, np.zeros((4, 4), np.float32), "tree")


def test_a_missing_package_is_a_clear_unavailable_error(
    monkeypatch: pytest.MonkeyPatch, linear: OnnxModel
) -> None:
    monkeypatch.setitem(agnostic.PACKAGES, "lime", "kubeloop_no_such_package")
    function = model_function(linear, model_target(linear.signature))
    with pytest.raises(ExplainerUnavailableError, match=r"pip install 'kubeloop\[explain\]'"):
        lime_weights(function, np.zeros((5, 4)), np.ones((1, 4)), 100, list("abcd"))
