"""Train one recipe with whichever framework its algorithm belongs to, and score it."""

from __future__ import annotations

from dataclasses import dataclass

from kubeloop_trainer.features import Task
from kubeloop_trainer.metrics import evaluate, prefixed, summarize_folds
from kubeloop_trainer.model import SKLEARN_ALGORITHMS, EpochCallback, EpochCheckpoints, Recipe, TrainedModel
from kubeloop_trainer.sklearn_models import fit_sklearn
from kubeloop_trainer.splits import Part, SplitData, folds
from kubeloop_trainer.topology import SINGLE_WORKER, Topology


@dataclass(frozen=True)
class Attempt:
    """A trained model and its validation (and cross-validation) metrics."""

    model: TrainedModel
    metrics: dict[str, float]


def fit_model(
    recipe: Recipe,
    train: Part,
    validation: Part,
    *,
    topology: Topology = SINGLE_WORKER,
    on_epoch: EpochCallback | None = None,
    checkpoints: EpochCheckpoints | None = None,
) -> TrainedModel:
    if recipe.algorithm in SKLEARN_ALGORITHMS:
        return fit_sklearn(recipe, train)
    from kubeloop_trainer.torch_models import fit_torch  # torch: only mlp/cnn need it

    return fit_torch(recipe, train, validation, topology=topology, on_epoch=on_epoch, checkpoints=checkpoints)


def scores(model: TrainedModel, part: Part, task: Task, prefix: str) -> dict[str, float]:
    return prefixed(prefix, evaluate(task, part.y, model.predict_output(part.x)))


def cross_validation(
    recipe: Recipe, train: Part, n_folds: int, topology: Topology = SINGLE_WORKER
) -> dict[str, float]:
    """cv_<metric>_mean/std over k folds of the training rows (each fold's model is thrown away)."""
    classification = recipe.task == "classification"
    fold_metrics = []
    for fit_part, held_part in folds(train, n_folds, classification, recipe.seed):
        model = fit_model(recipe, fit_part, held_part, topology=topology)
        fold_metrics.append(evaluate(recipe.task, held_part.y, model.predict_output(held_part.x)))
    return summarize_folds(fold_metrics)


def attempt(
    recipe: Recipe,
    data: SplitData,
    cv_folds: int = 0,
    *,
    topology: Topology = SINGLE_WORKER,
    on_epoch: EpochCallback | None = None,
    checkpoints: EpochCheckpoints | None = None,
) -> Attempt:
    """Train ``recipe`` (``checkpoints``: resume a distributed PyTorch fit, and checkpoint it)."""
    model = fit_model(
        recipe, data.train, data.validation, topology=topology, on_epoch=on_epoch, checkpoints=checkpoints
    )
    metrics = scores(model, data.validation, recipe.task, "val")
    if cv_folds > 1:
        metrics.update(cross_validation(recipe, data.train, cv_folds, topology))
    return Attempt(model=model, metrics=metrics)
