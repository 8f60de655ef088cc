"""What every built-in algorithm hands back once trained, and what it is trained from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy.typing as npt

from kubeloop_trainer.features import FloatMatrix, Task

Algorithm = Literal["logistic_regression", "random_forest", "gradient_boosting", "mlp", "cnn"]
SKLEARN_ALGORITHMS: frozenset[str] = frozenset({"logistic_regression", "random_forest", "gradient_boosting"})

# Called after each epoch of a PyTorch model with the epoch number (from 1) and its metrics
# (train_loss, val_loss, val_<metric>...). It may raise (optuna.TrialPruned) to stop training.
EpochCallback = Callable[[int, dict[str, float]], None]


class EpochCheckpoints(Protocol):
    """Where a PyTorch fit leaves a checkpoint after an epoch, so that a restarted gang or a replaced
    pod resumes (checkpoints.py). Every rank calls ``load`` and ``resumed``, in the same order."""

    def due(self) -> bool:
        """Whether to take a checkpoint after this epoch (only the chief's answer matters)."""
        ...

    def load(self) -> bytes | None:
        """The newest checkpoint of an earlier attempt, the same bytes on every rank; None: start afresh."""
        ...

    def resumed(self, epoch: int) -> None:
        """The fit continues after ``epoch`` (recorded on the run)."""
        ...

    def save(self, epoch: int, data: bytes) -> None:
        """The checkpoint after ``epoch`` (the chief stores it; the other ranks' copies are the same)."""
        ...


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how one model is trained (one trial of a search, or the only run)."""

    algorithm: Algorithm
    task: Task
    n_features: int
    n_classes: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    class_balancing: bool = False
    early_stopping_patience: int = 5

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1


class TrainedModel(Protocol):
    """A fitted model of any framework, seen the way export and evaluation need it."""

    @property
    def framework(self) -> str: ...

    def predict_output(self, x: FloatMatrix) -> npt.NDArray[Any]:
        """Class probabilities [n, k] for classification, predicted values [n] for regression."""
        ...

    def to_onnx(self) -> Any:
        """The model as an ``onnx.ModelProto`` with input ``input`` [batch, n_features] float32 and
        outputs ``label`` + ``probabilities`` (classification) or ``variable`` [batch, 1]."""
        ...

    def effective_params(self) -> dict[str, Any]:
        """The parameters the model was built with, defaults included, for MLflow."""
        ...

    def checkpoint(self) -> bytes | None:
        """A reloadable checkpoint (PyTorch state dict and architecture) or None."""
        ...
