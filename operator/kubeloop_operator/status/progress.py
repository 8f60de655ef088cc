"""status.progress of a TrainingJob: the trainer's latest report, kept while MLflow cannot be asked."""

from __future__ import annotations

from kubeloop.api.progress import TrainingProgress
from kubeloop.api.training import TrainingJobStatus, TrainingPhase

FINAL: tuple[TrainingPhase, ...] = ("Succeeded", "Failed")


def reads_progress(previous: TrainingPhase | None, phase: TrainingPhase | None) -> bool:
    """Ask MLflow while the job runs, and once more as it ends (the last report)."""
    return phase == "Running" or (phase in FINAL and previous not in FINAL)


def with_progress(
    status: TrainingJobStatus, previous: TrainingJobStatus, read: TrainingProgress | None
) -> TrainingJobStatus:
    """``status`` with the report just read, else the one shown before (same run: same generation)."""
    kept = previous.progress if previous.observed_generation == status.observed_generation else None
    return status.model_copy(update={"progress": read or kept})
