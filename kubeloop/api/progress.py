"""How far a running TrainingJob is: what the trainer reports and the operator shows in status.

The trainer writes a :class:`TrainingProgress` as JSON into the tag ``kubeloop.io/progress`` of the
job's parent MLflow run (trial workers included: trial counts come from the shared study); the
operator reads it back with MLflow's REST API while the job runs, and once after it ends, into
``status.progress``. No pod needs rights on the Kubernetes API for this.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kubeloop.api.common import ApiModel

PROGRESS_TAG = "kubeloop.io/progress"


class TrialCounts(ApiModel):
    """Hyperparameter trials of the job's study, by state (Optuna's states)."""

    total: int = Field(0, ge=0, description="tuning.maxTrials: how many trials the study runs.")
    running: int = Field(0, ge=0)
    complete: int = Field(0, ge=0)
    pruned: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)


class TrainingProgress(ApiModel):
    """The latest progress report of a job (epochs of the current training or trial, and trials)."""

    epoch: int | None = Field(None, ge=0, description="Epochs finished.")
    total_epochs: int | None = Field(None, ge=0)
    step: int | None = Field(None, ge=0, description="Optimizer steps finished (all epochs).")
    percent: float | None = Field(None, ge=0, le=100, description="Done, in percent (a column).")
    eta_seconds: float | None = Field(None, ge=0, description="Estimated seconds to the end.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Latest epoch metrics.")
    trials: TrialCounts | None = None
    updated: datetime | None = Field(None, description="When the trainer wrote this report.")
