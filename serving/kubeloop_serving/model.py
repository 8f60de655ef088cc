"""An ONNX model behind one shared onnxruntime session, with its tensor signature."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from kubeloop_serving.datatypes import BYTES, NUMPY_DTYPES, Tensors, oip_datatype_of_ort_type
from kubeloop_serving.errors import InferenceFailedError, InvalidRequestError, ModelLoadError
from kubeloop_serving.runtime import create_session

log = logging.getLogger(__name__)

FEATURE_NAMES_KEY = "kubeloop.feature_names"
DYNAMIC = -1


@dataclass(frozen=True)
class TensorSpec:
    """Name, OIP datatype and shape (-1 for a dynamic dimension) of a model input or output."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, object]:
        """The OIP ``$metadata_tensor`` object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def has_batch_dim(self) -> bool:
        """Whether the first dimension is dynamic, so rows of several requests can be stacked."""
        return len(self.shape) >= 1 and self.shape[0] == DYNAMIC


@dataclass(frozen=True)
class ModelSignature:
    """What the model takes and returns, as read from the ONNX graph."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_names: tuple[str, ...] | None = None

    @functools.cached_property
    def batchable(self) -> bool:
        """Whether requests can be merged: every input has a dynamic first (batch) dimension."""
        return bool(self.inputs) and all(spec.has_batch_dim for spec in self.inputs)

    @functools.cached_property
    def input_names(self) -> frozenset[str]:
        """Names of the inputs."""
        return frozenset(spec.name for spec in self.inputs)

    @functools.cached_property
    def output_names(self) -> frozenset[str]:
        """Names of the served outputs."""
        return frozenset(spec.name for spec in self.outputs)


def dims_of(shape: Sequence[object]) -> tuple[int, ...]:
    """onnxruntime dims (ints, symbolic names, None) as OIP dims with -1 for dynamic ones."""
    return tuple(dim if isinstance(dim, int) and dim >= 0 else DYNAMIC for dim in shape)


def tensor_specs(args: Sequence[Any], role: str) -> tuple[TensorSpec, ...]:
    """Specs of onnxruntime NodeArgs; inputs OIP cannot carry are an error, such outputs are skipped."""
    specs = []
    for arg in args:
        datatype = oip_datatype_of_ort_type(arg.type)
        if datatype is None:
            if role == "input":
                raise ModelLoadError(f"input {arg.name!r} has type {arg.type}, which OIP cannot carry")
            log.warning("output %r has type %s, which OIP cannot carry: not served", arg.name, arg.type)
            continue
        specs.append(TensorSpec(arg.name, datatype, dims_of(arg.shape or [])))
    return tuple(specs)


def feature_names_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """The ``kubeloop.feature_names`` JSON list of strings from the model's metadata_props, if valid."""
    raw = metadata.get(FEATURE_NAMES_KEY)
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        log.warning("ignoring metadata %s: not a JSON list of strings", FEATURE_NAMES_KEY)
        return None
    return tuple(names)


def signature_of(session: ort.InferenceSession) -> ModelSignature:
    """The signature of a loaded session."""
    outputs = tensor_specs(session.get_outputs(), "output")
    if not outputs:
        raise ModelLoadError("the model has no output that OIP can carry")
    return ModelSignature(
        inputs=tensor_specs(session.get_inputs(), "input"),
        outputs=outputs,
        feature_names=feature_names_from_metadata(session.get_modelmeta().custom_metadata_map),
    )


def warmup_inputs(inputs: Sequence[TensorSpec]) -> Tensors:
    """Zeros (empty strings for BYTES) shaped like each input, dynamic dimensions set to 1."""
    feeds: Tensors = {}
    for spec in inputs:
        shape = tuple(1 if dim == DYNAMIC else dim for dim in spec.shape)
        if spec.datatype == BYTES:
            feeds[spec.name] = np.full(shape, "", dtype=object)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])
    return feeds


class OnnxModel:
    """One onnxruntime session shared by all requests (its ``run`` is thread-safe)."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.signature = signature_of(session)
        self._output_names = [spec.name for spec in self.signature.outputs]
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4  # bad input is the client's error, not a server log line

    @classmethod
    def load(cls, path: str, threads: int) -> OnnxModel:
        """Create the session for the ONNX file at ``path``."""
        try:
            return cls(create_session(path, threads))
        except ModelLoadError:
            raise
        except Exception as error:
            raise ModelLoadError(f"onnxruntime cannot load {path}: {error}") from error

    @property
    def providers(self) -> list[str]:
        """Execution providers the session uses, best first."""
        return list(self.session.get_providers())

    def run(self, inputs: Tensors) -> Tensors:
        """Every served output for ``inputs``; raises onnxruntime's errors unchanged."""
        results = self.session.run(self._output_names, inputs, self._run_options)
        return dict(zip(self._output_names, results, strict=True))

    def warm_up(self) -> None:
        """One inference on synthesised input so the first real request is not the slow one."""
        try:
            self.run(warmup_inputs(self.signature.inputs))
        except Exception as error:
            raise ModelLoadError(f"warm-up inference failed: {error}") from error


def onnxruntime_runner(model: OnnxModel) -> Callable[[Tensors], Tensors]:
    """``model.run`` with onnxruntime's errors mapped: rejected input is 400, anything else 500."""

    def run(inputs: Tensors) -> Tensors:
        try:
            return model.run(inputs)
        except InvalidArgument as error:
            raise InvalidRequestError(f"onnxruntime rejected the input: {error}") from None
        except Exception as error:
            raise InferenceFailedError(f"inference failed: {error}") from None

    return run
