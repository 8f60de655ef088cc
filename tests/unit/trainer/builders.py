"""Small datasets made by code, and specs that train on them in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kubeloop.api.training import TrainingJobSpec


def blobs(n_rows: int = 240, n_features: int = 4, n_classes: int = 3, seed: int = 0) -> pa.Table:
    """Well separated Gaussian clusters: any algorithm learns them in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, size=n_rows)
    x = centers[labels] + rng.normal(0, 1, size=(n_rows, n_features))
    columns: dict[str, Any] = {f"f{i}": x[:, i].astype(np.float32) for i in range(n_features)}
    columns["label"] = [f"class_{k}" for k in labels]
    return pa.table(columns)


def linear(n_rows: int = 200, n_features: int = 3, seed: int = 0) -> pa.Table:
    """y = x . w + 100 + noise, for regression."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(n_rows, n_features))
    y = x @ np.arange(1, n_features + 1) * 10.0 + 100.0 + rng.normal(0, 0.5, size=n_rows)
    columns: dict[str, Any] = {f"x{i}": x[:, i] for i in range(n_features)}
    columns["target"] = y
    return pa.table(columns)


def images(n_rows: int = 160, side: int = 8, seed: int = 0) -> pa.Table:
    """8x8 one-channel images as a list column ``pixels``: class 1 has a bright left half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_rows)
    pictures = rng.normal(0, 0.3, size=(n_rows, side, side)).astype(np.float32)
    pictures[labels == 1, :, : side // 2] += 1.0
    flat = pa.array(list(pictures.reshape(n_rows, side * side)), type=pa.list_(pa.float32(), side * side))
    return pa.table({"pixels": flat, "label": labels})


def write_parquet(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_csv(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(table, path)
    return path


def spec(dataset: Path | str, target: str = "label", **fields: Any) -> TrainingJobSpec:
    """A TrainingJobSpec from wire (camelCase) fields over a dataset."""
    wire: dict[str, Any] = {"dataset": {"uri": str(dataset), "targetColumn": target}, **fields}
    return TrainingJobSpec.model_validate(wire)


def spec_json(dataset: Path | str, target: str = "label", **fields: Any) -> str:
    """The spec as the operator puts it in KUBELOOP_TRAINING_SPEC."""
    return json.dumps(spec(dataset, target, **fields).wire())


def additive(n_rows: int = 600, seed: int = 0, shuffle_labels: bool = False) -> pa.Table:
    """Binary churn labels from the sum of three features (a fourth is noise): a one-split stump
    learns a third of the signal, logistic regression nearly all of it, shuffled labels none."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(n_rows, 4))
    logit = 1.5 * (x[:, 0] + x[:, 1] + x[:, 2])
    churned = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    if shuffle_labels:
        churned = rng.permutation(churned)
    columns: dict[str, Any] = {f"f{i}": x[:, i].astype(np.float32) for i in range(4)}
    columns["label"] = ["churn" if c else "stay" for c in churned]
    return pa.table(columns)


def lending(n_rows: int = 6000, biased: bool = False, seed: int = 0) -> pa.Table:
    """Loan decisions with a sensitive attribute ``sex`` (F/M) that is never a model input, an
    ``age_band`` (0, 1, 2) and a feature ``f3`` correlated with sex (a proxy, as postcodes are).
    Biased: the label also depends on sex, so a model learns the bias through the proxy;
    unbiased: the label ignores sex and the proxy carries no signal."""
    rng = np.random.default_rng(seed)
    male = rng.random(n_rows) < 0.5
    x = rng.normal(0, 1, size=(n_rows, 4))
    x[:, 3] = male + rng.normal(0, 0.3, size=n_rows)
    logit = 1.5 * (x[:, 0] + x[:, 1]) + (3.0 * (male - 0.5) if biased else 0.0)
    approved = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    columns: dict[str, Any] = {f"f{i}": x[:, i].astype(np.float32) for i in range(4)}
    columns["sex"] = np.where(male, "M", "F")
    columns["age_band"] = rng.integers(0, 3, size=n_rows)
    columns["label"] = np.where(approved, "approved", "denied")
    return pa.table(columns)
