"""Training-time global importance: mean |SHAP value| per feature, per class where it applies.

Tree models (random forest; gradient boosting for regression and two classes, the cases
``shap.TreeExplainer`` supports) get exact TreeSHAP (path-dependent: no background needed).
Every other model gets ``shap.PermutationExplainer`` over its framework outputs with a masker of
``backgroundRows`` training rows and ``PERMUTATIONS`` antithetic permutations per row. Units are
the explained output's: class probabilities, except binary gradient boosting, which TreeSHAP
explains in log-odds of the second class. Both work on a bounded sample of ``sampleRows`` test
rows, so the cost does not grow with the dataset.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeloop.api.training import Importance
from kubeloop_trainer.features import Features, FloatMatrix, Task
from kubeloop_trainer.model import TrainedModel
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.splits import SplitData
from kubeloop_trainer.tracking import metric_name

PERMUTATIONS = 3
TOP_FEATURES = 20  # in the plot and as run metrics; the JSON artifact has every feature
JSON_ARTIFACT = "importance/importance.json"
PLOT_ARTIFACT = "importance/importance.png"


@dataclass(frozen=True)
class GlobalImportance:
    """Mean |SHAP| of each feature (in ``features`` order) for each explained output."""

    method: str  # "tree" or "permutation"
    unit: str
    rows: int
    features: list[str]
    outputs: dict[str, list[float]]  # output name (a class, or "value") -> per feature

    def overall(self) -> npt.NDArray[np.float64]:
        """Per feature, the mean over outputs: what the features are ranked by."""
        totals: npt.NDArray[np.float64] = np.asarray(list(self.outputs.values()), dtype=np.float64).mean(
            axis=0
        )
        return totals

    def ranked(self, top: int = TOP_FEATURES) -> list[tuple[str, float]]:
        totals = self.overall()
        order = np.argsort(-totals, kind="stable")[:top]
        return [(self.features[i], float(totals[i])) for i in order]

    def to_json(self) -> str:
        document = {
            "method": self.method,
            "unit": self.unit,
            "rows": self.rows,
            "features": self.features,
            "meanAbsShap": {
                name: dict(zip(self.features, values, strict=True)) for name, values in self.outputs.items()
            },
        }
        return json.dumps(document, indent=2)


def sample_rows(x: FloatMatrix, n: int, seed: int) -> FloatMatrix:
    if len(x) <= n:
        return x
    rows = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[rows]


def tree_estimator(model: TrainedModel, task: Task, n_classes: int) -> Any | None:
    """The scikit-learn tree ensemble TreeSHAP can explain, or None."""
    estimator = getattr(model, "estimator", None)
    name = type(estimator).__name__
    if name.startswith("RandomForest"):
        return estimator
    if name.startswith("GradientBoosting") and (task == "regression" or n_classes == 2):
        return estimator
    return None


def output_names(values: npt.NDArray[Any], classes: list[Any]) -> list[str]:
    if values.ndim == 3:
        return [str(c) for c in classes]
    return [str(classes[1])] if classes else ["value"]


def explain(
    model: TrainedModel,
    settings: Importance,
    *,
    test_x: FloatMatrix,
    train_x: FloatMatrix,
    feature_names: list[str],
    classes: list[Any],
    task: Task,
    seed: int,
) -> GlobalImportance:
    """Mean |SHAP| per feature of ``model`` on a sample of ``test_x``."""
    import shap  # the explain extra: only runs that ask for importance need it

    sample = sample_rows(test_x, settings.sample_rows, seed)
    estimator = tree_estimator(model, task, len(classes))
    if estimator is not None:
        values = np.asarray(shap.TreeExplainer(estimator).shap_values(sample))
        method = "tree"
        unit = "log-odds" if values.ndim == 2 and classes else "probability" if classes else "value"
    else:
        background = sample_rows(train_x, settings.background_rows, seed + 1)
        masker = shap.maskers.Independent(background, max_samples=len(background))
        explainer = shap.PermutationExplainer(model.predict_output, masker)
        evals = PERMUTATIONS * (2 * sample.shape[1] + 1)
        values = np.asarray(explainer(sample, max_evals=evals, batch_size=50, silent=True).values)
        method, unit = "permutation", "probability" if classes else "value"
    mean_abs = np.abs(values).mean(axis=0)  # [features] or [features, outputs]
    names = output_names(values, classes)
    per_output = mean_abs.reshape(len(feature_names), -1).T
    outputs = {name: [float(v) for v in row] for name, row in zip(names, per_output, strict=True)}
    return GlobalImportance(method, unit, len(sample), list(feature_names), outputs)


def plot(importance: GlobalImportance) -> bytes:
    """A horizontal bar chart (PNG) of the top features, one bar per explained output."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ranked = [name for name, _ in importance.ranked()]
    index = {name: i for i, name in enumerate(importance.features)}
    names = list(importance.outputs)
    height = 0.8 / len(names)
    figure, axes = plt.subplots(figsize=(8, 1.5 + 0.35 * len(ranked) * max(1, len(names) / 2)))
    positions = np.arange(len(ranked))[::-1]
    for k, name in enumerate(names):
        values = [importance.outputs[name][index[f]] for f in ranked]
        axes.barh(positions + k * height, values, height=height, label=name)
    axes.set_yticks(positions + height * (len(names) - 1) / 2, ranked)
    axes.set_xlabel(f"mean |SHAP value| ({importance.unit}, {importance.rows} rows, {importance.method})")
    axes.set_title("Global feature importance")
    if len(names) > 1:
        axes.legend(title="class", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def record_importance(
    model: TrainedModel,
    settings: Importance,
    data: SplitData,
    features: Features,
    task: Task,
    seed: int,
    recorder: Recorder,
) -> None:
    """Mean |SHAP| per feature as a JSON artifact, a bar chart and run metrics (the top features)."""
    importance = explain(
        model,
        settings,
        test_x=data.test.x,
        train_x=data.train.x,
        feature_names=features.feature_names,
        classes=features.classes,
        task=task,
        seed=seed,
    )
    recorder.text(importance.to_json(), JSON_ARTIFACT)
    recorder.file(plot(importance), PLOT_ARTIFACT)
    recorder.metrics({f"importance.{metric_name(name)}": value for name, value in importance.ranked()})
    top = ", ".join(f"{name} {value:.3g}" for name, value in importance.ranked(5))
    recorder.progress.say(f"global importance ({importance.method}, {importance.rows} rows): {top}")
