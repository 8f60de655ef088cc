"""What an epoch boundary of `fit_network` leaves for a restarted gang, and how it is taken up.

A snapshot holds everything the next epoch depends on: the network and optimizer state, the
best weights and the early-stopping bookkeeping, the epoch counters and the torch RNG state
(dropout), so a gang that resumes after epoch k trains epoch k+1 as the lost gang would have.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from kubeloop_trainer.errors import TrainerError
from kubeloop_trainer.model import EpochCheckpoints

FORMAT = "kubeloop.resume/v1"


@dataclass
class FitState:
    phase: int  # index into the phases of the fit
    phase_epoch: int  # epochs of that phase done
    epochs_without_improvement: int
    history: dict[str, Any]  # the fields of torch_fit.FitHistory
    network: dict[str, torch.Tensor]
    best_state: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: torch.Tensor

    def stopped(self, patience: int) -> bool:
        """Whether the phase ended early at this epoch (patience spent, or the loss diverged)."""
        last_loss = (self.history.get("last_metrics") or {}).get("train_loss", 0.0)
        return (patience > 0 and self.epochs_without_improvement >= patience) or math.isnan(last_loss)

    @property
    def epochs_run(self) -> int:
        return int(self.history["epochs_run"])

    def restore(self, network: nn.Module, optimizer: torch.optim.Optimizer, history: Any) -> None:
        """Back to the end of the snapshot's epoch: weights, optimizer, ``history`` (a FitHistory), RNG."""
        network.load_state_dict(self.network)
        optimizer.load_state_dict(self.optimizer)
        for name, value in self.history.items():
            setattr(history, name, value)
        torch.set_rng_state(self.rng)


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in state.items()}


def snapshot(
    phase: int,
    phase_epoch: int,
    epochs_without_improvement: int,
    history: Any,
    network: nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> bytes:
    state = {
        "format": FORMAT,
        "phase": phase,
        "phase_epoch": phase_epoch,
        "epochs_without_improvement": epochs_without_improvement,
        "history": asdict(history),
        "network": cpu_copy(network.state_dict()),
        "best_state": cpu_copy(best_state),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def decode(data: bytes) -> FitState:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}")
        return FitState(
            phase=int(state["phase"]),
            phase_epoch=int(state["phase_epoch"]),
            epochs_without_improvement=int(state["epochs_without_improvement"]),
            history=dict(state["history"]),
            network=state["network"],
            best_state=state["best_state"],
            optimizer=state["optimizer"],
            rng=state["rng"],
        )
    except Exception as error:  # a torn upload or a foreign file: never resume from it
        raise TrainerError(f"cannot resume from the checkpoint: {type(error).__name__}: {error}") from error


def take_up(checkpoints: EpochCheckpoints | None) -> FitState | None:
    """The newest checkpoint of an earlier attempt (the same on every rank), if there is one."""
    data = checkpoints.load() if checkpoints is not None else None
    if checkpoints is None or data is None:
        return None
    state = decode(data)
    checkpoints.resumed(state.epochs_run)
    return state
