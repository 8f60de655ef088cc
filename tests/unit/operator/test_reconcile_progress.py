"""The TrainingJob reconcile puts the trainer's progress into status and the gauges: read from a real
MLflow server while the job runs, kept when MLflow cannot be reached, read once more as it ends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress
from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop_operator.kube import path
from kubeloop_operator.reconcile import reconcile_training_job
from kubeloop_operator.settings import OperatorSettings
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.tracking import Tracker
from tests.fixtures.ports import free_port
from tests.unit.operator.world import NS, TRAINING, World, finish_job, sample

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]

LABELS = {"namespace": NS, "trainingjob": "fit"}


def start_running(world: World, name: str) -> None:
    """What the Job controller and the kubelet do: the Job active, its pod Running."""
    job = world.get("Job", name)
    world.api.store(
        path("Job", NS, name), {**job, "status": {"active": 1, "startTime": "2026-01-01T01:00:00Z"}}
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-run", "namespace": NS, "labels": {"job-name": name}},
        "status": {"phase": "Running"},
    }
    world.api.put(path("Pod", NS, f"{name}-run"), pod)


def report(tracker: Tracker, run_id: str, progress: TrainingProgress) -> None:
    tracker.set_tags(run_id, {PROGRESS_TAG: json.dumps(progress.wire())})


def test_progress_while_running_kept_while_mlflow_is_away_and_read_as_it_ends(mlflow_server: Any) -> None:
    world = World()
    world.ctx.settings = OperatorSettings(mlflow_tracking_uri=mlflow_server.tracking_uri)
    experiment = "progress-reconcile"
    spec = {**TRAINING, "mlflow": {"experiment": experiment}}
    world.create("TrainingJob", "fit", spec)
    reconcile_training_job(world.ctx, NS, "fit")
    assert "progress" not in world.status("TrainingJob", "fit")  # Pending: MLflow is not asked

    tracker = Tracker(mlflow_server.tracking_uri, experiment)
    run_id = tracker.start_run("fit", {UID_TAG: world.get("TrainingJob", "fit")["metadata"]["uid"]})
    half = TrainingProgress(epoch=2, total_epochs=4, percent=50.0, eta_seconds=30.0, metrics={"val_f1": 0.7})
    report(tracker, run_id, half)
    start_running(world, "fit")
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Running" and status["progress"] == half.wire()
    assert sample("kubeloop_training_progress_percent", **LABELS) == 50.0
    assert sample("kubeloop_training_eta_seconds", **LABELS) == 30.0
    assert sample("kubeloop_training_epoch", **LABELS) == 2

    report(tracker, run_id, half.model_copy(update={"epoch": 3, "percent": 75.0}))
    world.ctx.settings = OperatorSettings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    reconcile_training_job(world.ctx, NS, "fit")  # MLflow unreachable: no failure, the last report stays
    assert world.status("TrainingJob", "fit")["progress"] == half.wire()

    world.ctx.settings = OperatorSettings(mlflow_tracking_uri=mlflow_server.tracking_uri)
    done = half.model_copy(update={"epoch": 4, "percent": 100.0, "eta_seconds": 0.0})
    report(tracker, run_id, done)
    finish_job(world, "fit", encode(TrainingSummary(mlflow_run_id=run_id, metrics={"f1": 0.9})))
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Succeeded" and status["progress"] == done.wire()
    assert sample("kubeloop_training_progress_percent", **LABELS) == 100.0

    del world.api.objects[path("TrainingJob", NS, "fit")]
    reconcile_training_job(world.ctx, NS, "fit")
    assert sample("kubeloop_training_progress_percent", **LABELS) is None, "series go with the object"
