"""The PyTorch training loop: phases of epochs, early stopping, class weights, DDP.

A plain run is one phase that trains every layer. Fine-tuning is several phases: the head
alone, then more and more of the top blocks, each with its own learning rate. With early
stopping on (patience > 0) a phase ends after ``patience`` epochs without improvement of the
monitored validation metric, and the best weights seen so far are restored before the next
phase and at the end; with it off every epoch runs and the last weights are kept.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from kubeloop_trainer.distributed import any_rank, device_for, wrap_for_workers
from kubeloop_trainer.errors import InvalidSpecError, TerminatedError
from kubeloop_trainer.features import Task
from kubeloop_trainer.metrics import evaluate, is_better, prefixed
from kubeloop_trainer.model import EpochCallback, EpochCheckpoints
from kubeloop_trainer.networks import LayeredNetwork
from kubeloop_trainer.resume import snapshot, take_up
from kubeloop_trainer.splits import Part, shard
from kubeloop_trainer.stopping import raise_if_stopped, stop_requested
from kubeloop_trainer.topology import SINGLE_WORKER, Topology


@dataclass(frozen=True)
class Phase:
    """Epochs that share one learning rate and one set of trainable layers."""

    epochs: int
    learning_rate: float
    trainable_blocks: int | None = None  # None: all layers; k: the head and the top k blocks


@dataclass(frozen=True)
class LoopSettings:
    task: Task
    batch_size: int = 64
    weight_decay: float = 0.0
    patience: int = 5
    monitor: str = "val_loss"
    seed: int = 0
    class_weights: tuple[float, ...] | None = None


@dataclass
class FitHistory:
    epochs_run: int = 0
    best_epoch: int = 0
    best_value: float | None = None
    stopped_early: bool = False
    last_metrics: dict[str, float] | None = None


def balanced_class_weights(y: npt.NDArray[Any], n_classes: int) -> tuple[float, ...]:
    """n / (k * count(c)) per class, as sklearn's ``class_weight="balanced"``; absent classes weigh 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.divide(len(y), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return tuple(float(w) for w in weights)


def set_trainable(network: LayeredNetwork, trainable_blocks: int | None) -> None:
    """Freeze everything but the head and the top ``trainable_blocks`` blocks (None: nothing frozen)."""
    n_blocks = len(network.blocks)
    first_trainable = 0 if trainable_blocks is None else max(0, n_blocks - trainable_blocks)
    for index, block in enumerate(network.blocks):
        for parameter in block.parameters():
            parameter.requires_grad_(index >= first_trainable)
    for parameter in network.head.parameters():
        parameter.requires_grad_(True)


def target_tensor(y: npt.NDArray[Any], task: Task, device: torch.device) -> torch.Tensor:
    if task == "classification":
        return torch.as_tensor(y, dtype=torch.long, device=device)
    return torch.as_tensor(y, dtype=torch.float32, device=device)


def loss_function(settings: LoopSettings, device: torch.device) -> nn.Module:
    if settings.task == "regression":
        return nn.MSELoss()
    weight = None if settings.class_weights is None else torch.tensor(settings.class_weights, device=device)
    return nn.CrossEntropyLoss(weight=weight)


def batch_loss(loss_fn: nn.Module, outputs: torch.Tensor, targets: torch.Tensor, task: Task) -> torch.Tensor:
    loss: torch.Tensor = loss_fn(outputs[:, 0] if task == "regression" else outputs, targets)
    return loss


def outputs_as_numpy(logits: torch.Tensor, task: Task) -> npt.NDArray[Any]:
    """Probabilities [n, k] (classification) or values [n] (regression) as float64 NumPy."""
    if task == "classification":
        return torch.softmax(logits.double(), dim=1).cpu().numpy()
    return logits[:, 0].double().cpu().numpy()


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    rows: npt.NDArray[np.int64],
    settings: LoopSettings,
) -> float:
    """One pass over this rank's ``rows`` in mini-batches; the mean training loss."""
    model.train()
    x, y = data
    total, seen = 0.0, 0
    for start in range(0, len(rows), settings.batch_size):
        batch = torch.as_tensor(rows[start : start + settings.batch_size], device=x.device)
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(loss_fn, model(x[batch]), y[batch], settings.task)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        total += float(loss.item()) * len(batch)
        seen += len(batch)
    return total / max(seen, 1)


@torch.no_grad()
def validation_metrics(network: nn.Module, inputs: torch.Tensor, part: Part, task: Task) -> dict[str, float]:
    """val_loss (unweighted, as for every algorithm) and the task's other metrics on ``part``."""
    network.eval()
    return prefixed("val", evaluate(task, part.y, outputs_as_numpy(network(inputs), task)))


def stop_if_requested(topology: Topology) -> None:
    """The per-epoch stop checkpoint; all workers agree, so none is left waiting for another."""
    if any_rank(stop_requested(), topology):
        raise_if_stopped()
        raise TerminatedError("another worker was asked to stop")


def monitored_value(metrics: dict[str, float], monitor: str) -> float:
    if monitor not in metrics:
        raise InvalidSpecError(
            f"earlyStoppingMetric {monitor!r} is not one of the epoch's metrics {sorted(metrics)}"
        )
    return metrics[monitor]


def fit_network(
    network: LayeredNetwork,
    train: Part,
    validation: Part,
    phases: list[Phase],
    settings: LoopSettings,
    *,
    topology: Topology = SINGLE_WORKER,
    on_epoch: EpochCallback | None = None,
    checkpoints: EpochCheckpoints | None = None,
) -> FitHistory:
    """Train ``network`` in place, phase by phase; every rank must call it with the same data.
    With ``checkpoints``: resume after the newest checkpoint of an earlier attempt, if any, and
    leave one after every epoch."""
    device = device_for(topology)
    network.to(device)
    train_data = (torch.as_tensor(train.x, device=device), target_tensor(train.y, settings.task, device))
    validation_inputs = torch.as_tensor(validation.x, device=device)
    loss_fn = loss_function(settings, device)
    history = FitHistory()
    best_state = copy.deepcopy(network.state_dict())
    resumed = take_up(checkpoints)
    for index, phase in enumerate(phases):
        if resumed is not None and index < resumed.phase:
            continue  # done before the checkpoint; its weights are in it
        set_trainable(network, phase.trainable_blocks)
        trainable = [p for p in network.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=phase.learning_rate, weight_decay=settings.weight_decay)
        first_epoch = epochs_without_improvement = 0
        if resumed is not None:
            resumed.restore(network, optimizer, history)
            best_state, epochs_without_improvement = resumed.best_state, resumed.epochs_without_improvement
            first_epoch = resumed.phase_epoch
            if resumed.stopped(settings.patience):
                first_epoch, history.stopped_early = phase.epochs, True
            resumed = None
        model = wrap_for_workers(network, topology)
        for phase_epoch in range(first_epoch, phase.epochs):
            history.epochs_run += 1
            rows = shard(len(train), topology.rank, topology.world_size, settings.seed, history.epochs_run)
            metrics = {
                "train_loss": train_epoch(model, optimizer, loss_fn, train_data, rows=rows, settings=settings)
            }
            metrics.update(validation_metrics(network, validation_inputs, validation, settings.task))
            history.last_metrics = metrics
            if on_epoch is not None:
                on_epoch(history.epochs_run, metrics)
            value = monitored_value(metrics, settings.monitor)
            if is_better(value, history.best_value, settings.monitor):
                history.best_value, history.best_epoch = value, history.epochs_run
                best_state = copy.deepcopy(network.state_dict())
                epochs_without_improvement = 0
            else:
                epochs_without_improvement += 1
            if checkpoints is not None and checkpoints.due():
                state = snapshot(
                    index,
                    phase_epoch + 1,
                    epochs_without_improvement,
                    history,
                    network,
                    best_state,
                    optimizer,
                )
                checkpoints.save(history.epochs_run, state)
            stop_if_requested(topology)
            patience_spent = settings.patience > 0 and epochs_without_improvement >= settings.patience
            if any_rank(patience_spent or math.isnan(metrics["train_loss"]), topology):
                history.stopped_early = True
                break
        if settings.patience > 0:
            network.load_state_dict(best_state)
    network.eval()
    return history
