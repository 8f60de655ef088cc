"""Ask MLflow for a TrainingJob's progress (see kubeloop_operator.progress); never fails a reconcile."""

from __future__ import annotations

import logging

from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus
from kubeloop_operator.context import Context
from kubeloop_operator.progress import ProgressError
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import training_env
from kubeloop_operator.status.progress import reads_progress, with_progress

log = logging.getLogger(__name__)


def observe_progress(
    ctx: Context, owner: Owner, spec: TrainingJobSpec, previous: TrainingJobStatus, status: TrainingJobStatus
) -> TrainingJobStatus:
    """``status`` with the trainer's latest report, read from the MLflow server its pods use."""
    read = None
    if reads_progress(previous.phase, status.phase):
        env = training_env(owner, spec, ctx.settings)  # the pods' server and experiment
        try:
            read = ctx.read_progress(env["MLFLOW_TRACKING_URI"], env["MLFLOW_EXPERIMENT_NAME"], owner.uid)
        except ProgressError as error:  # keep the last report; the next poll asks again
            log.info("progress of %s/%s: %s", owner.namespace, owner.name, error)
    return with_progress(status, previous, read)
