"""Progress from the trainer to status: the trainer's writer and the operator's reader meet at a real
MLflow server; status keeps the last report while MLflow cannot be asked."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress, TrialCounts
from kubeloop.api.training import TrainingJobStatus
from kubeloop_operator.progress import ProgressError, read_progress
from kubeloop_operator.status.progress import reads_progress, with_progress
from kubeloop_trainer.progress_report import Plan, ProgressReporter
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.tracking import Tracker
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.unit

_jobs = itertools.count(1)
REPORT = TrainingProgress(
    epoch=3, total_epochs=4, step=30, percent=75.0, eta_seconds=12.0, metrics={"val_f1": 0.8}
)


def new_job(tracking_uri: str) -> tuple[Tracker, str, str]:
    """An experiment and a TrainingJob uid of its own."""
    n = next(_jobs)
    return Tracker(tracking_uri, f"progress-{n}"), f"progress-{n}", f"0000-uid-{n}"


@pytest.mark.mlflow
def test_what_the_trainer_writes_the_operator_reads(mlflow_server: Any) -> None:
    tracker, experiment, uid = new_job(mlflow_server.tracking_uri)
    assert read_progress(mlflow_server.tracking_uri, experiment, uid) is None  # no run yet
    parent = tracker.start_run("fit", {UID_TAG: uid})
    assert read_progress(mlflow_server.tracking_uri, experiment, uid) is None  # no report yet
    written: list[str] = []

    def write(text: str) -> None:
        tracker.set_tags(parent, {PROGRESS_TAG: text})
        written.append(text)

    reporter = ProgressReporter(write, Plan(total_epochs=4, steps_per_epoch=10), min_interval=0)
    reporter.epoch(3, {"val_f1": 0.8, "val_loss": 0.3})
    # a trial (child) run of the same job, newer than the parent, carries the uid too
    tracker.start_run("fit-trial-0", {UID_TAG: uid, PROGRESS_TAG: "{}"}, parent_run_id=parent)
    read = read_progress(mlflow_server.tracking_uri, experiment, uid)
    assert read is not None and read == TrainingProgress.model_validate_json(written[-1])
    assert (read.epoch, read.total_epochs, read.step, read.percent) == (3, 4, 30, 75.0)
    assert read.metrics == {"val_f1": 0.8, "val_loss": 0.3} and read.updated is not None
    other = read_progress(mlflow_server.tracking_uri, experiment, "0000-another-job")
    assert other is None


@pytest.mark.mlflow
def test_fields_the_reader_does_not_know_it_passes_on(mlflow_server: Any) -> None:
    """Trial counts written by parallel trial workers reach status as they are."""
    tracker, experiment, uid = new_job(mlflow_server.tracking_uri)
    parent = tracker.start_run("tune", {UID_TAG: uid})
    trials = TrialCounts(total=16, running=4, complete=9, pruned=2, failed=1)
    report = REPORT.model_copy(update={"trials": trials})
    tracker.set_tags(parent, {PROGRESS_TAG: json.dumps(report.wire())})
    assert read_progress(mlflow_server.tracking_uri, experiment, uid) == report


@pytest.mark.mlflow
def test_a_tag_that_is_no_report_is_an_error_not_a_crash(mlflow_server: Any) -> None:
    tracker, experiment, uid = new_job(mlflow_server.tracking_uri)
    parent = tracker.start_run("fit", {UID_TAG: uid})
    tracker.set_tags(parent, {PROGRESS_TAG: '{"percent": 250}'})
    with pytest.raises(ProgressError, match="not a progress report"):
        read_progress(mlflow_server.tracking_uri, experiment, uid)


def test_an_unreachable_mlflow_is_a_progress_error() -> None:
    with pytest.raises(ProgressError, match="cannot reach MLflow"):
        read_progress(f"http://127.0.0.1:{free_port()}", "team-a", "uid-1", timeout=2)


@pytest.mark.parametrize(
    ("previous", "phase", "reads"),
    [
        (None, "Pending", False),
        ("Pending", "Running", True),
        ("Running", "Running", True),
        ("Running", "Succeeded", True),  # once more as it ends: the last report
        ("Running", "Failed", True),
        ("Succeeded", "Succeeded", False),
        ("Running", "Suspended", False),
    ],
)
def test_when_progress_is_read(previous: Any, phase: Any, reads: bool) -> None:
    assert reads_progress(previous, phase) is reads


def test_status_with_and_without_progress() -> None:
    previous = TrainingJobStatus(observed_generation=1, phase="Running", progress=REPORT)
    current = TrainingJobStatus(observed_generation=1, phase="Running")
    newer = REPORT.model_copy(update={"epoch": 4, "percent": 100.0})
    assert with_progress(current, previous, newer).progress == newer
    assert with_progress(current, previous, None).progress == REPORT, "MLflow away: the last report stays"
    assert "progress" not in with_progress(current, TrainingJobStatus(), None).wire()
    edited = TrainingJobStatus(observed_generation=2, phase="Pending")
    assert with_progress(edited, previous, None).progress is None, "a new run starts without the old report"
    shown = with_progress(current, previous, newer).wire()["progress"]
    assert (shown["percent"], shown["etaSeconds"], shown["totalEpochs"]) == (100.0, 12.0, 4)
