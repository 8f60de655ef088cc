"""Processes per worker pod (torchrun's conventions): how many, what they cannot be combined with.

``spec.processesPerWorker`` (P) runs P processes in each of the ``spec.workers`` (W) pods, one per
device: LOCAL_RANK 0..P-1, RANK = pod index * P + LOCAL_RANK, WORLD_SIZE = W * P. Unset, P is
``resources.gpus`` when that is above 1 and the job can run distributed (a PyTorch algorithm of the
built-in trainer without tuning, or your own command), else 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubeloop.api.training import TrainingJobSpec

TORCH_ALGORITHMS = ("mlp", "cnn")
MAX_PROCESSES_PER_WORKER = 16

NEEDS_TORCH = "spec.processesPerWorker > 1 needs a PyTorch algorithm (mlp, cnn) or your own command"
NO_TUNING = "spec.processesPerWorker > 1: the built-in trainer runs tuning in one process; set it to 1"
ONE_PER_GPU = "spec.processesPerWorker must not exceed spec.resources.gpus (one process per GPU)"

_SET_ABOVE_ONE = "!has(self.processesPerWorker) || self.processesPerWorker <= 1"
PROCESSES_SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": f"{_SET_ABOVE_ONE} || has(self.command) || !has(self.builtin)"
        " || self.builtin.algorithm in ['mlp', 'cnn']",
        "message": NEEDS_TORCH,
    },
    {"rule": f"{_SET_ABOVE_ONE} || has(self.command) || !has(self.tuning)", "message": NO_TUNING},
    {
        "rule": f"{_SET_ABOVE_ONE} || !has(self.resources) || !has(self.resources.gpus)"
        " || self.resources.gpus == 0 || self.processesPerWorker <= self.resources.gpus",
        "message": ONE_PER_GPU,
    },
]


def runs_distributed(spec: TrainingJobSpec) -> bool:
    """Whether the job's code can run as several ranks (your command is trusted to)."""
    if spec.command is not None:
        return True
    return spec.builtin.algorithm in TORCH_ALGORITHMS and spec.tuning is None


def processes_spec_problem(spec: TrainingJobSpec) -> str | None:
    """What PROCESSES_SPEC_RULES refuse in ``spec``, with the same message; None when it is fine."""
    wanted = spec.processes_per_worker
    if wanted is None or wanted <= 1:
        return None
    if spec.command is None and spec.builtin.algorithm not in TORCH_ALGORITHMS:
        return NEEDS_TORCH
    if spec.command is None and spec.tuning is not None:
        return NO_TUNING
    if 0 < spec.resources.gpus < wanted:
        return ONE_PER_GPU
    return None


def processes_per_worker(spec: TrainingJobSpec) -> int:
    """P: as set, or one per GPU where the job can run distributed, else 1."""
    if spec.processes_per_worker is not None:
        return spec.processes_per_worker
    return spec.resources.gpus if spec.resources.gpus > 1 and runs_distributed(spec) else 1


def world_size(spec: TrainingJobSpec) -> int:
    """How many ranks the job runs: workers * processes per worker."""
    return spec.workers * processes_per_worker(spec)
