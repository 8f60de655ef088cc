"""ONNX export: metadata the inference server reads, and the parity check against onnxruntime.

Parity: on held-out rows the ONNX model's outputs (``probabilities`` for classifiers,
``variable`` for regressors) must match the framework's within
``|onnx - framework| <= atol + rtol * |framework|`` (atol = rtol = 1e-4 by default), or the
run fails with ExportMismatch. Float32 inputs go to both, so trees split on the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from kubeloop_trainer.errors import ExportMismatchError
from kubeloop_trainer.features import FloatMatrix, Task
from kubeloop_trainer.model import TrainedModel

FEATURE_NAMES_KEY = "kubeloop.feature_names"
CLASSES_KEY = "kubeloop.classes"
TASK_KEY = "kubeloop.task"
ALGORITHM_KEY = "kubeloop.algorithm"
PARITY_ROWS = 256


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-4
    rtol: float = 1e-4


@dataclass(frozen=True)
class ParityReport:
    output: str
    rows: int
    max_abs_diff: float
    tolerance: Tolerance
    passed: bool

    def describe(self) -> str:
        verdict = "within" if self.passed else "outside"
        bound = f"atol={self.tolerance.atol:g} + rtol={self.tolerance.rtol:g}*|value|"
        return (
            f"onnxruntime vs framework on {self.rows} held-out rows: "
            f"max |diff| of {self.output} = {self.max_abs_diff:.3g}, {verdict} {bound}"
        )


def model_metadata(
    feature_names: list[str], classes: list[Any], task: Task, algorithm: str
) -> dict[str, str]:
    metadata = {FEATURE_NAMES_KEY: json.dumps(feature_names), TASK_KEY: task, ALGORITHM_KEY: algorithm}
    if task == "classification":
        metadata[CLASSES_KEY] = json.dumps(classes)
    return metadata


def with_metadata(model: Any, metadata: dict[str, str]) -> Any:
    """``model`` (an onnx.ModelProto) with ``metadata`` in its metadata_props, replacing same keys."""
    kept = [prop for prop in model.metadata_props if prop.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def onnx_session(model_bytes: bytes) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_outputs(model_bytes: bytes, x: FloatMatrix, task: Task) -> npt.NDArray[Any]:
    """What the served model returns for ``x``: probabilities [n, k] or values [n]."""
    session = onnx_session(model_bytes)
    input_name = session.get_inputs()[0].name
    output = "probabilities" if task == "classification" else "variable"
    (result,) = session.run([output], {input_name: np.asarray(x, dtype=np.float32)})
    values = np.asarray(result, dtype=np.float64)
    return values if task == "classification" else values.reshape(-1)


def compare(
    output: str, expected: npt.NDArray[Any], actual: npt.NDArray[Any], tolerance: Tolerance
) -> ParityReport:
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return ParityReport(output, len(expected), float("inf"), tolerance, passed=False)
    diff = np.abs(actual - expected)
    passed = bool(np.all(diff <= tolerance.atol + tolerance.rtol * np.abs(expected)))
    return ParityReport(output, len(expected), float(diff.max(initial=0.0)), tolerance, passed)


def check_parity(
    model_bytes: bytes, trained: TrainedModel, x: FloatMatrix, task: Task, tolerance: Tolerance = Tolerance()
) -> ParityReport:
    rows = x[:PARITY_ROWS]
    output = "probabilities" if task == "classification" else "variable"
    return compare(output, trained.predict_output(rows), onnx_outputs(model_bytes, rows, task), tolerance)


def require_parity(report: ParityReport) -> None:
    if not report.passed:
        raise ExportMismatchError(report.describe())


def export_model(trained: TrainedModel, metadata: dict[str, str]) -> bytes:
    """The trained model as serialized ONNX with kubeloop's metadata."""
    return bytes(with_metadata(trained.to_onnx(), metadata).SerializeToString())
