"""ONNX export of every algorithm: metadata, and onnxruntime parity with the framework."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from kubeloop_trainer.errors import ExportMismatchError
from kubeloop_trainer.features import Features, Task, build_features
from kubeloop_trainer.metrics import evaluate
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.onnx_export import (
    check_parity,
    export_model,
    model_metadata,
    onnx_outputs,
    require_parity,
)
from kubeloop_trainer.splits import SplitData, split_rows, take
from kubeloop_trainer.training import fit_model
from tests.unit.trainer.builders import blobs, images, linear

pytestmark = pytest.mark.unit

NETWORK = {"epochs": 3, "hiddenUnits": [8], "convChannels": [4], "denseUnits": 8}


def prepared(features: Features, task: Task) -> SplitData:
    y = features.y if task == "classification" else None
    return take(features, split_rows(len(features.y), y, 0.2, 0.2, seed=0))


@pytest.mark.parametrize(
    ("algorithm", "task"),
    [
        ("logistic_regression", "classification"),
        ("random_forest", "classification"),
        ("gradient_boosting", "classification"),
        ("mlp", "classification"),
        ("random_forest", "regression"),
        ("gradient_boosting", "regression"),
        ("mlp", "regression"),
    ],
)
def test_tabular_export_matches_framework(algorithm: str, task: Task) -> None:
    classification = task == "classification"
    table, target = (blobs(n_rows=150), "label") if classification else (linear(n_rows=150), "target")
    features = build_features(table, target, task)
    data = prepared(features, task)
    hyperparameters = NETWORK if algorithm == "mlp" else {}
    recipe = Recipe(algorithm, task, features.x.shape[1], features.n_classes, hyperparameters)  # type: ignore[arg-type]
    model = fit_model(recipe, data.train, data.validation)
    metadata = model_metadata(features.feature_names, features.classes, task, algorithm)
    onnx_bytes = export_model(model, metadata)

    report = check_parity(onnx_bytes, model, data.test.x, task)
    assert report.passed, report.describe()
    assert report.max_abs_diff < 1e-4 * max(1.0, float(np.abs(data.test.y).max()))
    served = onnx_outputs(onnx_bytes, data.test.x, task)
    if classification:  # float32 probabilities: renormalise in float64 before the log loss
        served = served / served.sum(axis=1, keepdims=True)
    framework = model.predict_output(data.test.x)
    assert evaluate(task, data.test.y, served) == pytest.approx(
        evaluate(task, data.test.y, framework), rel=1e-4
    )
    props = {p.key: p.value for p in onnx.load_from_string(onnx_bytes).metadata_props}
    assert json.loads(props["kubeloop.feature_names"]) == features.feature_names


def test_cnn_reads_flat_pixels_and_exports() -> None:
    features = build_features(images(n_rows=80, side=8), "label", "classification")
    data = prepared(features, "classification")
    recipe = Recipe("cnn", "classification", 64, 2, {**NETWORK, "epochs": 4, "learningRate": 0.01})
    model = fit_model(recipe, data.train, data.validation)
    onnx_bytes = export_model(model, model_metadata(features.feature_names, [0, 1], "classification", "cnn"))
    assert check_parity(onnx_bytes, model, data.test.x, "classification").passed
    assert evaluate("classification", data.test.y, model.predict_output(data.test.x))["accuracy"] > 0.7


def test_a_different_model_fails_the_parity_check() -> None:
    """The check can fail: ONNX of one forest against the predictions of another."""
    features = build_features(blobs(n_rows=150), "label", "classification")
    data = prepared(features, "classification")
    exported = fit_model(
        Recipe("random_forest", "classification", 4, 3, {"n_estimators": 3}, seed=1),
        data.train,
        data.validation,
    )
    other = fit_model(
        Recipe("random_forest", "classification", 4, 3, {"n_estimators": 3}, seed=2),
        data.train,
        data.validation,
    )
    onnx_bytes = export_model(exported, {})
    report = check_parity(onnx_bytes, other, data.test.x, "classification")
    assert not report.passed
    with pytest.raises(ExportMismatchError, match=r"outside atol=0\.0001") as caught:
        require_parity(report)
    assert caught.value.reason == "ExportMismatch"
