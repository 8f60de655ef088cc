"""Score ONNX models on one evaluation dataset, like for like: what the challenger gate compares.

Every model is run by onnxruntime, as the inference server runs it, on the same rows. Each gets
the columns its ``kubeloop.feature_names`` metadata names, in that order (a model without them
gets every feature column in file order). Classification labels are encoded in one class list for
all models, the sorted union of the data's labels and each model's ``kubeloop.classes``; a model's
probabilities are spread onto it (zero for classes it never learned), so a class a model does not
know counts against it, and both models are scored by the same metric code as training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeloop.api.challenge import EvaluationDataset
from kubeloop_trainer.dataset import DatasetFingerprint, load_dataset
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.features import FloatMatrix, Task, feature_matrix
from kubeloop_trainer.metrics import classification_metrics, regression_metrics
from kubeloop_trainer.onnx_export import CLASSES_KEY, FEATURE_NAMES_KEY, TASK_KEY, onnx_session

BATCH_ROWS = 65536


class NotComparableError(Exception):
    """A model cannot be scored on the evaluation data (missing features, other task, bad outputs)."""


@dataclass(frozen=True)
class EvaluationData:
    """The rows both models are scored on."""

    x: FloatMatrix
    feature_names: list[str]
    target: list[Any]  # the target column's values as in the file
    task: Task
    fingerprint: DatasetFingerprint

    @property
    def rows(self) -> int:
        return len(self.target)


def load_evaluation(
    dataset: EvaluationDataset, default_target: str, task: Task, excluded: frozenset[str] = frozenset()
) -> EvaluationData:
    """Read the evaluation data (the training data's file rules); anything unusable is BadData.
    ``excluded``: columns that are never features (the sensitive attributes)."""
    loaded = load_dataset(dataset.uri, dataset.format)
    target = dataset.target_column or default_target
    table = loaded.table
    if target not in table.column_names:
        raise BadDataError(f"evaluation data {dataset.uri} has no target column {target!r}")
    column = table.column(target)
    if column.null_count:
        raise BadDataError(f"evaluation target column {target!r} has {column.null_count} missing values")
    x, names = feature_matrix(table, target, excluded)
    values = column.to_pylist()
    if task == "regression" and not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise BadDataError(
            f"regression needs a numeric target; evaluation column {target!r} is {column.type}"
        )
    return EvaluationData(x=x, feature_names=names, target=values, task=task, fingerprint=loaded.fingerprint)


@dataclass(frozen=True)
class OnnxModel:
    """A serialized ONNX model and the kubeloop metadata the server reads."""

    name: str  # "challenger" or "champion", for messages
    session: Any
    feature_names: list[str] | None
    classes: list[Any] | None
    task: str | None

    @classmethod
    def load(cls, name: str, model_bytes: bytes) -> OnnxModel:
        try:
            session = onnx_session(model_bytes)
        except Exception as error:
            raise NotComparableError(f"the {name} is not a loadable ONNX model: {error}") from error
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        names, classes = _json_list(metadata.get(FEATURE_NAMES_KEY)), _json_list(metadata.get(CLASSES_KEY))
        return cls(name, session, names, classes, metadata.get(TASK_KEY))


def _json_list(text: str | None) -> list[Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def inputs_for(model: OnnxModel, data: EvaluationData) -> FloatMatrix:
    """The evaluation rows with the model's features, in the model's order."""
    if model.feature_names is None:
        return data.x
    position = {name: i for i, name in enumerate(data.feature_names)}
    missing = [name for name in model.feature_names if name not in position]
    if missing:
        raise NotComparableError(f"the evaluation data lacks features of the {model.name}: {missing[:10]}")
    return data.x[:, [position[name] for name in model.feature_names]]


def run_model(model: OnnxModel, x: FloatMatrix, task: Task) -> npt.NDArray[np.float64]:
    """Probabilities [n, k] or values [n], as the served model returns them (in batches)."""
    output = "probabilities" if task == "classification" else "variable"
    if output not in {o.name for o in model.session.get_outputs()}:
        raise NotComparableError(f"the {model.name} has no {output!r} output: not a {task} model")
    input_name = model.session.get_inputs()[0].name
    parts = []
    for start in range(0, len(x), BATCH_ROWS):
        batch = np.ascontiguousarray(x[start : start + BATCH_ROWS], dtype=np.float32)
        try:
            (result,) = model.session.run([output], {input_name: batch})
        except Exception as error:
            raise NotComparableError(f"the {model.name} fails on the evaluation data: {error}") from error
        parts.append(np.asarray(result, dtype=np.float64))
    values = np.concatenate(parts)
    if task == "regression":
        return values.reshape(-1)
    # float32 rows sum to 1 within ~1e-7; log loss wants them exact (a tie stays a tie)
    sums = values.sum(axis=1, keepdims=True) if values.ndim == 2 else None
    return values / sums if sums is not None and np.all(sums > 0) else values


def class_list(target: list[Any], models: Sequence[OnnxModel]) -> list[Any]:
    """One sorted class list for every model and the data."""
    found = set(target)
    for model in models:
        if model.classes is None:
            raise NotComparableError(
                f"the {model.name} has no {CLASSES_KEY} metadata: its classes are unknown"
            )
        found.update(model.classes)
    try:
        return sorted(found)
    except TypeError as error:
        raise NotComparableError(f"labels of different types cannot be compared: {error}") from error


def spread(
    model: OnnxModel, probabilities: npt.NDArray[np.float64], classes: list[Any]
) -> npt.NDArray[np.float64]:
    """The model's probabilities in the columns of ``classes``."""
    assert model.classes is not None  # class_list refused models without classes
    if probabilities.ndim != 2 or probabilities.shape[1] != len(model.classes):
        raise NotComparableError(
            f"the {model.name} returns {probabilities.shape} probabilities for {len(model.classes)} classes"
        )
    full = np.zeros((len(probabilities), len(classes)))
    full[:, [classes.index(c) for c in model.classes]] = probabilities
    return full


def score_models(models: Sequence[OnnxModel], data: EvaluationData) -> list[dict[str, float]]:
    """Every metric of the task for each model, on the same rows and the same label encoding."""
    for model in models:
        if model.task is not None and model.task != data.task:
            raise NotComparableError(
                f"the {model.name} is a {model.task} model, the gate compares {data.task}"
            )
    if data.task == "regression":
        y = np.asarray(data.target, dtype=np.float64)
        return [regression_metrics(y, run_model(m, inputs_for(m, data), "regression")) for m in models]
    classes = class_list(data.target, models)
    index = {value: i for i, value in enumerate(classes)}
    y = np.array([index[value] for value in data.target], dtype=np.int64)
    return [
        classification_metrics(y, spread(m, run_model(m, inputs_for(m, data), "classification"), classes))
        for m in models
    ]
