"""Hyperparameter search with Optuna: grid, random or Bayesian (TPE), with median pruning.

Each trial trains one recipe (spec hyperparameters overlaid with the trial's suggestions) and
is scored by ``objective.metric`` from its metrics (``val_*``, and ``cv_*_mean`` when
cross-validation is on). PyTorch trials report that metric after every epoch, so the
MedianPruner can stop unpromising ones early. Grid search enumerates categorical choices, every
integer of a small int range (else ``GRID_POINTS`` evenly spaced ones) and ``GRID_POINTS``
evenly spaced (log-spaced with ``log: true``) floats; ``maxTrials`` still caps the run.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import optuna

from kubeloop.api.processes import TORCH_ALGORITHMS
from kubeloop.api.training import ParameterRange, Trial, Tuning
from kubeloop_trainer.errors import InvalidSpecError
from kubeloop_trainer.hyperparameters import coerce_scalar
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.splits import SplitData
from kubeloop_trainer.stopping import raise_if_stopped
from kubeloop_trainer.training import Attempt, attempt

GRID_POINTS = 5
MAX_GRID_INTS = 10


class TrialObserver(Protocol):
    """Sees each trial (e.g. to log it as an MLflow child run); must be thread-safe."""

    def trial_started(self, number: int, params: dict[str, Any]) -> None: ...

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None: ...

    def trial_finished(
        self, number: int, state: str, value: float | None, metrics: dict[str, float]
    ) -> None: ...


@dataclass(frozen=True)
class TuningResult:
    best: Attempt
    best_trial: Trial
    completed: int
    pruned: int


def grid_values(parameter: ParameterRange) -> list[Any]:
    if parameter.type == "categorical":
        return list(parameter.choices or [])
    low, high = float(parameter.low or 0), float(parameter.high or 0)
    if parameter.type == "int":
        if high - low + 1 <= MAX_GRID_INTS:
            return list(range(int(low), int(high) + 1))
        return sorted({round(float(v)) for v in np.linspace(low, high, GRID_POINTS)})
    points = (
        np.geomspace(low, high, GRID_POINTS)
        if parameter.log and low > 0
        else np.linspace(low, high, GRID_POINTS)
    )
    return [float(v) for v in points]


def search_grid(search_space: dict[str, ParameterRange]) -> dict[str, list[Any]]:
    return {name: grid_values(parameter) for name, parameter in search_space.items()}


def sampler_for(tuning: Tuning, seed: int) -> Any:
    if tuning.strategy == "grid":
        return optuna.samplers.GridSampler(search_grid(tuning.search_space), seed=seed)
    if tuning.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, tuning.max_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def pruner_for(tuning: Tuning, algorithm: str) -> Any:
    if tuning.pruning and algorithm in TORCH_ALGORITHMS:
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def suggest(trial: Any, search_space: dict[str, ParameterRange]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, parameter in search_space.items():
        if parameter.type == "categorical":
            params[name] = coerce_scalar(trial.suggest_categorical(name, list(parameter.choices or [])))
        elif parameter.type == "int":
            params[name] = trial.suggest_int(
                name, int(parameter.low or 0), int(parameter.high or 0), log=parameter.log
            )
        else:
            params[name] = trial.suggest_float(
                name, float(parameter.low or 0), float(parameter.high or 0), log=parameter.log
            )
    return params


def objective_value(metrics: dict[str, float], metric: str) -> float:
    if metric not in metrics:
        raise InvalidSpecError(
            f"objective metric {metric!r} is not among the trial's metrics {sorted(metrics)}"
        )
    return metrics[metric]


class Search:
    """The objective function, plus the best model seen so far (only that one is kept)."""

    def __init__(
        self, tuning: Tuning, recipe: Recipe, data: SplitData, cv_folds: int, observer: TrialObserver
    ) -> None:
        self.tuning, self.recipe, self.data, self.cv_folds, self.observer = (
            tuning,
            recipe,
            data,
            cv_folds,
            observer,
        )
        self.lock = threading.Lock()
        self.best: tuple[Trial, Attempt] | None = None
        self.maximize = tuning.objective.direction == "maximize"

    def _keep_if_best(self, trial: Trial, result: Attempt) -> None:
        with self.lock:
            best = None if self.best is None else self.best[0].value
            if best is None or (trial.value > best if self.maximize else trial.value < best):
                self.best = (trial, result)

    def __call__(self, trial: Any) -> float:
        raise_if_stopped()
        metric = self.tuning.objective.metric
        params = suggest(trial, self.tuning.search_space)
        recipe = dataclasses.replace(self.recipe, hyperparameters={**self.recipe.hyperparameters, **params})
        self.observer.trial_started(trial.number, params)
        last: dict[str, float] = {}

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            last.update(metrics)
            self.observer.trial_epoch(trial.number, epoch, metrics)
            if metric in metrics:
                trial.report(metrics[metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{metric}={metrics[metric]:.4g} at epoch {epoch}")

        try:
            result = attempt(recipe, self.data, self.cv_folds, on_epoch=on_epoch)
        except optuna.TrialPruned:
            self.observer.trial_finished(trial.number, "PRUNED", None, last)
            raise
        except Exception:
            self.observer.trial_finished(trial.number, "FAIL", None, last)
            raise
        value = objective_value(result.metrics, metric)
        self._keep_if_best(Trial(number=trial.number, value=value, params=params), result)
        self.observer.trial_finished(trial.number, "COMPLETE", value, result.metrics)
        return value


def tune(
    tuning: Tuning, recipe: Recipe, data: SplitData, cv_folds: int, observer: TrialObserver
) -> TuningResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=tuning.objective.direction,
        sampler=sampler_for(tuning, recipe.seed),
        pruner=pruner_for(tuning, recipe.algorithm),
    )
    search = Search(tuning, recipe, data, cv_folds, observer)
    study.optimize(search, n_trials=tuning.max_trials, n_jobs=tuning.parallel_trials, catch=())
    if search.best is None:
        raise InvalidSpecError(f"no trial of {len(study.trials)} completed (all pruned?)")
    best_trial, best = search.best
    states = [t.state for t in study.trials]
    return TuningResult(
        best=best,
        best_trial=best_trial,
        completed=states.count(optuna.trial.TrialState.COMPLETE),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
    )
