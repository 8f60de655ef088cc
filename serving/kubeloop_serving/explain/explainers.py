"""Which explainer a model gets, built once at load, and one explanation per request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx

from kubeloop_serving.datatypes import NUMPY_DTYPES
from kubeloop_serving.explain.agnostic import (
    ModelFunction,
    batched,
    installed,
    lime_weights,
    minimum_permutation_budget,
    permutation_shap,
)
from kubeloop_serving.explain.errors import ExplainerUnavailableError
from kubeloop_serving.explain.trees import FloatArray, parse_tree_ensemble
from kubeloop_serving.explain.treeshap import TreeShap
from kubeloop_serving.model import ModelSignature, OnnxModel

Method = Literal["tree", "permutation", "lime"]
METHODS: tuple[Method, ...] = ("tree", "permutation", "lime")
FLOAT_TYPES = ("FP16", "FP32", "FP64")
CLASSES_KEY = "kubeloop.classes"
#: Outputs preferred as the one explained (skl2onnx's classifier scores), before any other float output.
PREFERRED_OUTPUTS = ("probabilities", "variable")


@dataclass(frozen=True)
class ModelTarget:
    """What is explained: one 2-D float input of ``n_features`` columns, one float output."""

    input_name: str
    input_datatype: str
    n_features: int
    feature_names: tuple[str, ...]
    output_name: str


@dataclass(frozen=True)
class Explanation:
    """Attributions [rows, features, outputs] and base values [rows, outputs] of one request."""

    method: Method
    output_space: Literal["raw", "output"]
    output_names: tuple[str, ...]
    values: FloatArray
    base_values: FloatArray
    post_transform: str | None = None


def model_target(signature: ModelSignature) -> ModelTarget:
    """The input and output explanations are about; ExplainerUnavailableError for other shapes."""
    if len(signature.inputs) != 1:
        raise ExplainerUnavailableError("explanations need a model with exactly one input")
    spec = signature.inputs[0]
    if spec.datatype not in FLOAT_TYPES or len(spec.shape) != 2 or spec.shape[1] < 1:
        raise ExplainerUnavailableError(
            f"explanations need one float input shaped [rows, features]; {spec.name!r} is "
            f"{spec.datatype} {list(spec.shape)}"
        )
    floats = [o for o in signature.outputs if o.datatype in FLOAT_TYPES and len(o.shape) in (1, 2)]
    if not floats:
        raise ExplainerUnavailableError("explanations need a float output shaped [rows] or [rows, outputs]")
    preferred = [o for o in floats if o.name in PREFERRED_OUTPUTS]
    n_features = spec.shape[1]
    names = signature.feature_names
    features = names if names is not None and len(names) == n_features else None
    return ModelTarget(
        input_name=spec.name,
        input_datatype=spec.datatype,
        n_features=n_features,
        feature_names=features or tuple(f"{spec.name}_{i}" for i in range(n_features)),
        output_name=(preferred or floats)[0].name,
    )


def model_function(model: OnnxModel, target: ModelTarget) -> ModelFunction:
    """Float rows -> the explained output as float64 [rows, outputs], in batched onnxruntime calls."""
    dtype: np.dtype[Any] = NUMPY_DTYPES[target.input_datatype]

    def run(x: npt.NDArray[Any]) -> FloatArray:
        outputs = model.session.run([target.output_name], {target.input_name: np.asarray(x, dtype=dtype)})
        scores = np.asarray(outputs[0], dtype=np.float64)
        return scores.reshape(len(x), -1)

    return batched(run)


def output_names(model: OnnxModel, count: int) -> tuple[str, ...]:
    """Class labels from ``kubeloop.classes`` metadata when they fit, else column indices."""
    raw = model.session.get_modelmeta().custom_metadata_map.get(CLASSES_KEY)
    try:
        classes = json.loads(raw) if raw is not None else None
    except ValueError:
        classes = None
    if isinstance(classes, list) and len(classes) == count:
        return tuple(str(c) for c in classes)
    return tuple(str(i) for i in range(count))


def default_method(configured: Literal["auto"] | Method, tree_available: bool) -> Method:
    """The configured method; ``auto`` is tree for tree ensembles, else permutation SHAP."""
    if configured != "auto":
        return configured
    return "tree" if tree_available else "permutation"


class Explainers:
    """Every method available for one model and its background sample."""

    def __init__(
        self,
        model: OnnxModel,
        target: ModelTarget,
        background: npt.NDArray[Any],
        tree: TreeShap | None,
        default: Method,
    ) -> None:
        self.target = target
        self.background = background
        self.tree = tree
        self.default = default
        self.function = model_function(model, target)
        self.output_names = output_names(model, self.function(background[:1]).shape[1])

    @classmethod
    def build(
        cls, model_path: str, model: OnnxModel, background: npt.NDArray[Any], method: Literal["auto"] | Method
    ) -> Explainers:
        """Explainers for the model at ``model_path``; ``auto`` is tree when the model is a tree ensemble."""
        target = model_target(model.signature)
        tree = None
        if method in ("auto", "tree"):
            try:
                ensemble = parse_tree_ensemble(onnx.load(model_path), target.n_features)
                tree = TreeShap.fit(ensemble, background)
            except ExplainerUnavailableError:
                if method == "tree":
                    raise
        explainers = cls(model, target, background, tree, default_method(method, tree is not None))
        explainers.warm_up()
        return explainers

    def warm_up(self) -> None:
        """One tiny permutation explanation: shap compiles its masking code (numba, ~8 s) on first use,
        which would otherwise land on the first request that asks for it."""
        if not installed("permutation"):
            return
        row = self.background[:1]
        permutation_shap(self.function, row, row, minimum_permutation_budget(self.target.n_features))

    def available(self) -> tuple[Method, ...]:
        return tuple(m for m in METHODS if (self.tree is not None if m == "tree" else installed(m)))

    def explain(self, x: npt.NDArray[Any], method: Method | None, budget: int) -> Explanation:
        """One explanation of the rows ``x`` (blocking: call it off the event loop)."""
        chosen = method or self.default
        if chosen == "tree":
            if self.tree is None:
                raise ExplainerUnavailableError("tree explanations need a tree-ensemble model")
            values = self.tree.explain(x)
            base = np.broadcast_to(self.tree.expected_value, (len(x), values.shape[2]))
            labels = self.tree.ensemble.output_labels
            names = (
                labels if len(labels) == values.shape[2] else tuple(str(i) for i in range(values.shape[2]))
            )
            return Explanation("tree", "raw", names, values, base, self.tree.ensemble.post_transform)
        if chosen == "permutation":
            values, base = permutation_shap(self.function, self.background, x, budget)
        else:
            values, base = lime_weights(
                self.function, self.background, x, budget, list(self.target.feature_names)
            )
        return Explanation(chosen, "output", self.output_names, values, base)
