"""Explanation benchmark: kubeloop's explainers vs shap's own TreeExplainer, same models, as JSON.

    .venv/bin/python -m bench.explain [--rows 20] [--background 100] [--repeats 3]

Two models fitted and exported exactly as the trainer does (``kubeloop_trainer.sklearn_models``:
float32 features, skl2onnx, kubeloop metadata): a GradientBoostingClassifier and a
RandomForestClassifier (100 trees each, scikit-learn defaults) on 2,000 synthetic rows of 10
features. Per model, explain latency per row (median of --repeats runs over --rows rows, one
thread) for kubeloop's TreeSHAP computed from the ONNX file, and for ``shap.TreeExplainer``
(interventional, same background) called on the scikit-learn model itself: the peer, and the
ratio ours / shap. Setup (parsing + background pass + the permutation warm-up, whose first run in a
process compiles shap's numba code, vs building shap's explainer) is reported apart. Then
permutation SHAP and LIME through kubeloop's in-process code (onnxruntime, batched) on the boosted
model, against the same peer. Parity: max |ours - shap| of the attributions and
of the base values, which the tests hold to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shap

from kubeloop_serving.explain.explainers import Explainers, Method
from kubeloop_serving.model import OnnxModel
from kubeloop_trainer.model import Algorithm, Recipe
from kubeloop_trainer.onnx_export import export_model, model_metadata
from kubeloop_trainer.sklearn_models import SklearnModel, fit_sklearn
from kubeloop_trainer.splits import Part

FEATURES = [f"f{i}" for i in range(10)]
TRAIN_ROWS = 2000


def data(rows: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(rows, len(FEATURES))).astype(np.float32)


def fit(algorithm: Algorithm) -> SklearnModel:
    x = data(TRAIN_ROWS, seed=1)
    signal = x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + np.sin(x[:, 4])
    recipe = Recipe(algorithm, "classification", len(FEATURES), 2, {"n_estimators": 100})
    return fit_sklearn(recipe, Part(x=x, y=(signal > 0).astype(np.int64)))


def median_seconds(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def shap_reference(model: SklearnModel, background: Any, rows: Any, repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    explainer = shap.TreeExplainer(
        model.estimator, data=background.astype(np.float64), feature_perturbation="interventional"
    )
    setup = time.perf_counter() - started
    seconds, values = median_seconds(lambda: explainer.shap_values(rows.astype(np.float64)), repeats)
    values = np.asarray(values)
    return {
        "setup_s": setup,
        "seconds": seconds,
        "values": values[:, :, None] if values.ndim == 2 else values,
        "base": np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64)),
    }


def explainers_for(
    model: SklearnModel, algorithm: str, background: Any, directory: Path
) -> tuple[Explainers, float]:
    path = directory / f"{algorithm}.onnx"
    path.write_bytes(export_model(model, model_metadata(FEATURES, [0, 1], "classification", algorithm)))
    session = OnnxModel.load(str(path), threads=1)
    started = time.perf_counter()
    explainers = Explainers.build(str(path), session, background, "auto")
    return explainers, time.perf_counter() - started


def per_row_ms(seconds: float, rows: int) -> float:
    return round(1000 * seconds / rows, 3)


def tree_case(algorithm: Algorithm, args: argparse.Namespace, directory: Path) -> tuple[dict[str, Any], Any]:
    model = fit(algorithm)
    background, rows = data(args.background, seed=2), data(args.rows, seed=3)
    explainers, setup = explainers_for(model, algorithm, background, directory)
    assert explainers.tree is not None
    seconds, explanation = median_seconds(lambda: explainers.explain(rows, "tree", 0), args.repeats)
    peer = shap_reference(model, background, rows, args.repeats)
    columns = slice(1, 2) if peer["values"].shape[2] == 1 else slice(None)  # shap: GB binary = class 1
    case = {
        "model": type(model.estimator).__name__,
        "trees": len(model.estimator.estimators_) if algorithm == "random_forest" else 100,
        "leaves": int(explainers.tree.ensemble.leaf_values.shape[0]),
        "kubeloop_treeshap_ms_per_row": per_row_ms(seconds, args.rows),
        "shap_tree_explainer_ms_per_row": per_row_ms(peer["seconds"], args.rows),
        "ratio_kubeloop_over_shap": round(seconds / peer["seconds"], 3),
        "kubeloop_setup_s": round(setup, 3),
        "shap_setup_s": round(peer["setup_s"], 3),
        "parity_max_abs_diff_values": float(np.abs(explanation.values[:, :, columns] - peer["values"]).max()),
        "parity_max_abs_diff_base": float(
            np.abs(explainers.tree.expected_value[columns] - peer["base"]).max()
        ),
    }
    return case, (explainers, rows, peer)


def agnostic_case(
    method: Method,
    budget: int,
    explainers: Explainers,
    rows: Any,
    peer: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    subset = rows[: max(1, args.rows // 4)]
    explainers.explain(subset[:1], method, budget)  # warm (Explainers.build already compiled shap's code)
    seconds, _ = median_seconds(lambda: explainers.explain(subset, method, budget), args.repeats)
    peer_per_row = peer["seconds"] / args.rows
    return {
        "method": method,
        "budget": budget,
        "kubeloop_ms_per_row": per_row_ms(seconds, len(subset)),
        "shap_tree_explainer_ms_per_row": round(1000 * peer_per_row, 3),
        "ratio_kubeloop_over_shap_tree": round(seconds / len(subset) / peer_per_row, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--background", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=1000, help="permutation max_evals and LIME num_samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-explain-") as scratch:
        boosted, (explainers, rows, peer) = tree_case("gradient_boosting", args, Path(scratch))
        forest, _ = tree_case("random_forest", args, Path(scratch))
        agnostic = [
            agnostic_case(m, args.budget, explainers, rows, peer, args) for m in ("permutation", "lime")
        ]
    report = {
        "bench": "explain",
        "peer": "shap.TreeExplainer(sklearn model, data=background, feature_perturbation='interventional')",
        "shap_version": shap.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "background_rows": args.background,
        "features": len(FEATURES),
        "tree": [boosted, forest],
        "model_agnostic_on_gradient_boosting": agnostic,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
