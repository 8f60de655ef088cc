"""Model-agnostic explanations through the ONNX session: permutation SHAP (shap) and LIME (lime).

Both libraries hand the model many perturbed rows at once; :func:`batched` feeds them to
onnxruntime in blocks of at most ``batch_rows`` rows, never one call per perturbation.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.explain.errors import ExplainerUnavailableError

FloatArray = npt.NDArray[np.float64]
#: float rows [n, features] -> scores [n, outputs]
ModelFunction = Callable[[npt.NDArray[Any]], FloatArray]
BATCH_ROWS = 8192
SEED = 0


#: method -> the package it needs (the ``explain`` extra)
PACKAGES = {"permutation": "shap", "lime": "lime"}


def installed(method: str) -> bool:
    """Whether the package ``method`` needs can be imported."""
    return importlib.util.find_spec(PACKAGES[method]) is not None


def require(method: str) -> None:
    if not installed(method):
        raise ExplainerUnavailableError(
            f"{method} explanations need the {PACKAGES[method]} package: pip install 'kubeloop[explain]'"
        )


def batched(function: ModelFunction, batch_rows: int = BATCH_ROWS) -> ModelFunction:
    """``function`` applied to blocks of at most ``batch_rows`` rows, results stacked."""

    def run(x: npt.NDArray[Any]) -> FloatArray:
        rows = np.asarray(x, dtype=np.float32)
        if len(rows) <= batch_rows:
            return function(rows)
        return np.concatenate([function(rows[i : i + batch_rows]) for i in range(0, len(rows), batch_rows)])

    return run


def minimum_permutation_budget(n_features: int) -> int:
    """shap's floor: one forward and one backward pass over the features, plus the full row."""
    return 2 * n_features + 1


def permutation_shap(
    function: ModelFunction, background: npt.NDArray[Any], x: npt.NDArray[Any], budget: int
) -> tuple[FloatArray, FloatArray]:
    """Permutation SHAP values [rows, features, outputs] and base values [rows, outputs].

    ``budget`` is shap's ``max_evals``: model evaluations per explained row (each one a masked row
    per background row); the values add up exactly to f(x) - mean f(background).
    """
    require("permutation")
    import shap

    floor = minimum_permutation_budget(x.shape[1])
    if budget < floor:
        raise InvalidRequestError(
            f"budget {budget} is too low for permutation SHAP on {x.shape[1]} features; "
            f"it needs at least {floor}"
        )
    masker = shap.maskers.Independent(np.asarray(background, dtype=np.float64), max_samples=len(background))
    explainer = shap.PermutationExplainer(_float64(function), masker, seed=SEED)
    result: Any = explainer(np.asarray(x, dtype=np.float64), max_evals=budget, silent=True)
    values = np.asarray(result.values, dtype=np.float64)
    base = np.asarray(result.base_values, dtype=np.float64)
    if values.ndim == 2:
        values, base = values[:, :, None], base.reshape(-1, 1)
    return values, base


def lime_weights(
    function: ModelFunction,
    background: npt.NDArray[Any],
    x: npt.NDArray[Any],
    budget: int,
    feature_names: list[str],
) -> tuple[FloatArray, FloatArray]:
    """LIME local linear weights [rows, features, outputs] and intercepts [rows, outputs].

    Continuous features, sampled around the explained row (scaled by the background's standard
    deviation); a weight is the change of the output per standard deviation of the feature.
    ``budget`` is LIME's ``num_samples``; they reach the model in one batched call per row.
    """
    require("lime")
    from lime.lime_tabular import LimeTabularExplainer

    if budget < 2:
        raise InvalidRequestError(f"budget {budget} is too low for LIME: it needs at least 2 samples")
    explainer = LimeTabularExplainer(
        np.asarray(background, dtype=np.float64),
        mode="classification",  # any [n, outputs] scores; LIME only warns when rows do not sum to 1
        feature_names=feature_names,
        discretize_continuous=False,
        sample_around_instance=True,
        random_state=SEED,
    )
    n_features = x.shape[1]
    outputs = function(np.asarray(x[:1], dtype=np.float32)).shape[1]
    values = np.zeros((len(x), n_features, outputs))
    base = np.zeros((len(x), outputs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row, instance in enumerate(np.asarray(x, dtype=np.float64)):
            explanation = explainer.explain_instance(
                instance,
                _float64(function),
                labels=range(outputs),
                num_features=n_features,
                num_samples=budget,
            )
            for k in range(outputs):
                for feature, weight in explanation.local_exp[k]:
                    values[row, feature, k] = weight
                base[row, k] = explanation.intercept[k]
    return values, base


def _float64(function: ModelFunction) -> ModelFunction:
    def run(x: npt.NDArray[Any]) -> FloatArray:
        return np.asarray(function(np.asarray(x, dtype=np.float32)), dtype=np.float64)

    return run
