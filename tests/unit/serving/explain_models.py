"""scikit-learn tree models exported exactly as the trainer exports them, with data for explaining them.

Parity with shap.TreeExplainer on the scikit-learn model: the trainer fits on float32 features and
skl2onnx stores the float64 thresholds rounded to float32. A float32 row can only take a different
branch in onnxruntime than in scikit-learn if it lies within one float32 step of a threshold; the
rows explained here are fresh continuous draws (not training rows, whose values the thresholds sit
between), so none does, and shap gets the very same float32 values (cast to float64, exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kubeloop_trainer.model import Algorithm, Recipe
from kubeloop_trainer.onnx_export import export_model, model_metadata
from kubeloop_trainer.sklearn_models import SklearnModel, fit_sklearn
from kubeloop_trainer.splits import Part

FEATURES = ("age", "income", "score", "tenure", "visits")


@dataclass(frozen=True)
class ExportedModel:
    sklearn: SklearnModel
    onnx_bytes: bytes
    background: np.ndarray[Any, Any]
    rows: np.ndarray[Any, Any]

    def save(self, directory: Path, name: str) -> Path:
        path = directory / f"{name}.onnx"
        path.write_bytes(self.onnx_bytes)
        return path


def draws(rows: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(rows, len(FEATURES))).astype(np.float32)


def trained(algorithm: Algorithm, task: str, n_classes: int = 2, **hyperparameters: Any) -> ExportedModel:
    """A model the trainer would fit and export, on a synthetic non-linear target."""
    x = draws(400, seed=1)
    signal = x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3]
    if task == "classification":
        cuts = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1])
        y: np.ndarray[Any, Any] = np.digitize(signal, cuts)
    else:
        y = signal.astype(np.float64)
    recipe = Recipe(
        algorithm=algorithm,
        task=task,  # type: ignore[arg-type]
        n_features=len(FEATURES),
        n_classes=n_classes if task == "classification" else 0,
        hyperparameters=hyperparameters,
    )
    model = fit_sklearn(recipe, Part(x=x, y=y))
    classes = list(range(n_classes)) if task == "classification" else []
    metadata = model_metadata(list(FEATURES), classes, task, algorithm)  # type: ignore[arg-type]
    return ExportedModel(model, export_model(model, metadata), draws(60, seed=2), draws(8, seed=3))


def write_background(path: Path, rows: np.ndarray[Any, Any]) -> Path:
    """Reference rows as Parquet with the model's feature names (plus a column the model ignores)."""
    columns = {name: pa.array(rows[:, i]) for i, name in enumerate(FEATURES)}
    pq.write_table(pa.table({**columns, "label": pa.array(np.zeros(len(rows), np.int64))}), path)
    return path
