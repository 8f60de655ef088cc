"""Scoring ONNX models on evaluation data like for like: features by name, one class list for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from kubeloop.api.challenge import EvaluationDataset
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.evaluation import NotComparableError, OnnxModel, load_evaluation, score_models
from kubeloop_trainer.features import build_features
from kubeloop_trainer.metrics import classification_metrics
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.onnx_export import export_model, model_metadata, onnx_outputs
from kubeloop_trainer.splits import Part
from kubeloop_trainer.training import fit_model
from tests.unit.trainer.builders import additive, linear, write_parquet

pytestmark = pytest.mark.unit


def onnx_of(table: pa.Table, target: str = "label", algorithm: str = "logistic_regression") -> bytes:
    task = "classification" if target == "label" else "regression"
    features = build_features(table, target, task)  # type: ignore[arg-type]
    part = Part(features.x, features.y)
    recipe = Recipe(algorithm, task, features.x.shape[1], features.n_classes)  # type: ignore[arg-type]
    model = fit_model(recipe, part, part)
    metadata = model_metadata(features.feature_names, features.classes, task, algorithm)  # type: ignore[arg-type]
    return export_model(model, metadata)


def evaluation(
    table: pa.Table, tmp_path: Path, target: str | None = None, task: Any = "classification"
) -> Any:
    path = write_parquet(table, tmp_path / "eval.parquet")
    return load_evaluation(EvaluationDataset(uri=str(path), target_column=target), "label", task)


def test_columns_are_taken_by_the_models_feature_names(tmp_path: Path) -> None:
    train = additive(n_rows=300, seed=1)
    model = onnx_of(train)
    holdout = additive(n_rows=200, seed=2)
    reordered = holdout.select(["label", "f3", "f1", "f0", "f2"])  # another column order, target first
    data = evaluation(reordered, tmp_path)
    (scores,) = score_models([OnnxModel.load("champion", model)], data)

    features = build_features(holdout, "label", "classification")
    probabilities = onnx_outputs(model, features.x, "classification")  # in the file's column order
    expected = classification_metrics(features.y, probabilities / probabilities.sum(axis=1, keepdims=True))
    assert scores == pytest.approx(expected)
    assert scores["roc_auc"] > 0.8


def test_a_class_one_model_never_learned_counts_against_it(tmp_path: Path) -> None:
    """Both models see one class list; the model that only knows two of three classes is scored on all."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=(300, 2)).astype(np.float32)
    labels = np.where(x[:, 0] > 0.5, "c", np.where(x[:, 1] > 0, "b", "a"))
    three = pa.table({"x0": x[:, 0], "x1": x[:, 1], "label": labels.tolist()})
    two = three.filter(pa.compute.not_equal(three["label"], "c"))
    data = evaluation(three, tmp_path)
    knows_all, knows_two = score_models(
        [OnnxModel.load("challenger", onnx_of(three)), OnnxModel.load("champion", onnx_of(two))], data
    )
    assert knows_all["accuracy"] > knows_two["accuracy"]
    assert knows_two["accuracy"] <= float(np.mean(labels != "c")) + 1e-9  # never right on class c


def test_missing_features_and_other_tasks_are_not_comparable(tmp_path: Path) -> None:
    champion = OnnxModel.load("champion", onnx_of(additive(n_rows=200)))
    without_f3 = evaluation(additive(n_rows=100, seed=5).drop_columns(["f3"]), tmp_path)
    with pytest.raises(NotComparableError, match=r"lacks features of the champion: \['f3'\]"):
        score_models([champion], without_f3)
    regression = evaluation(
        linear(n_rows=50).rename_columns(["f0", "f1", "f2", "label"]), tmp_path, task="regression"
    )
    with pytest.raises(NotComparableError, match="classification model"):
        score_models([champion], regression)
    with pytest.raises(NotComparableError, match="not a loadable ONNX model"):
        OnnxModel.load("champion", b"not onnx")


def test_regression_scores_values(tmp_path: Path) -> None:
    table = linear(n_rows=200)
    data = evaluation(table, tmp_path, target="target", task="regression")
    (scores,) = score_models(
        [OnnxModel.load("challenger", onnx_of(table, "target", "gradient_boosting"))], data
    )
    assert set(scores) == {"loss", "rmse", "mae", "r2"} and scores["r2"] > 0.5


def test_unusable_evaluation_data_is_bad_data(tmp_path: Path) -> None:
    with pytest.raises(BadDataError, match="no target column 'churned'"):
        evaluation(additive(n_rows=20), tmp_path, target="churned")
    with pytest.raises(BadDataError, match="dataset not found"):
        load_evaluation(EvaluationDataset(uri=str(tmp_path / "missing.parquet")), "label", "classification")
