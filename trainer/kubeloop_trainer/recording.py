"""What the chief worker records in MLflow: the run, its trials as child runs, the model.

Other workers get a `Recorder` without a tracker: every call is then a no-op, so the
training code never asks which rank it runs on.
"""

from __future__ import annotations

import threading
from typing import Any

import mlflow

from kubeloop.api.progress import PROGRESS_TAG
from kubeloop_trainer.context import RunContext
from kubeloop_trainer.errors import TrackingError
from kubeloop_trainer.progress import Progress, epoch_line, trial_line
from kubeloop_trainer.progress_report import Plan, ProgressReporter
from kubeloop_trainer.tags import MESSAGE_TAG, TRIAL_STATE_TAG, TRIAL_TAG
from kubeloop_trainer.tracking import RunStatus, Tracker

TRIAL_STATUS: dict[str, RunStatus] = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def epoch_series(metrics: dict[str, float]) -> dict[str, float]:
    return {f"epoch_{name}": value for name, value in metrics.items()}


def open_tracker(context: RunContext) -> Tracker:
    tracking_uri = context.tracking_uri or mlflow.get_tracking_uri()
    try:
        return Tracker(tracking_uri, context.experiment)
    except Exception as error:  # connection refused, auth, bad URI: the run cannot be tracked
        raise TrackingError(
            f"cannot use MLflow at {tracking_uri}: {type(error).__name__}: {error}"
        ) from error


class Recorder:
    """The parent MLflow run of one training run (a no-op without a tracker)."""

    def __init__(self, context: RunContext, tracker: Tracker | None, progress: Progress) -> None:
        self.context = context
        self.tracker = tracker
        self.progress = progress
        self.run_id: str | None = None
        self.run_url: str | None = None
        self._trial_runs: dict[int, str] = {}
        self._trial_params: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._max_trials = context.spec.tuning.max_trials if context.spec.tuning else 0
        self.reporter: ProgressReporter | None = None  # the chief's, once its run exists

    def report_progress(self, plan: Plan) -> None:
        """From now on, progress goes into the run's progress tag (see `progress_report`)."""
        if self.tracker is not None and self.run_id is not None:
            self.reporter = ProgressReporter(lambda text: self.tags({PROGRESS_TAG: text}), plan)
            self.reporter.begin()

    def stage(self, metrics: dict[str, float]) -> None:
        if self.reporter is not None:
            self.reporter.stage(metrics)

    def succeeded(self, metrics: dict[str, float]) -> None:
        if self.reporter is not None:
            self.reporter.finished(metrics)

    def start(self, provenance: dict[str, str]) -> None:
        if self.tracker is None:
            return
        self.run_id = self.tracker.start_run(self.context.run_name, {**self.context.tags(), **provenance})
        self.run_url = self.tracker.run_url(self.run_id)
        self.progress.say(f"MLflow run {self.run_id}: {self.run_url or self.tracker.tracking_uri}")

    def params(self, params: dict[str, Any]) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_params(self.run_id, params)

    def metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_metrics(self.run_id, metrics, step)

    def tags(self, tags: dict[str, str]) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.set_tags(self.run_id, tags)

    def text(self, text: str, artifact_file: str) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_text(self.run_id, text, artifact_file)

    def file(self, data: bytes, artifact_file: str) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_bytes(self.run_id, data, artifact_file)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch metrics of the (only) model as ``epoch_<name>`` series, the epoch as MLflow step
        (the plain names hold the final model's values: with early stopping, the best epoch's)."""
        total = self.context.spec.hyperparameters.get("epochs")
        self.progress.say(epoch_line(epoch, total if isinstance(total, int) else None, metrics))
        self.metrics(epoch_series(metrics), step=epoch)
        if self.reporter is not None:
            self.reporter.epoch(epoch, metrics)

    def log_model(self, onnx_bytes: bytes, checkpoint: bytes | None) -> str | None:
        if self.tracker is None or self.run_id is None:
            return None
        return self.tracker.log_model(self.run_id, onnx_bytes, checkpoint)

    def register(
        self, source: str, name: str, alias: str | None, tags: dict[str, str] | None = None
    ) -> str | None:
        """A new version of ``name``, tagged with the run's tags (and ``tags``), ``alias`` moved onto it."""
        if self.tracker is None or self.run_id is None:
            return None
        return self.tracker.register(
            self.run_id, source, name, alias, {**self.context.tags(), **(tags or {})}
        )

    def finish(
        self, status: RunStatus, failure_reason: str | None = None, message: str | None = None
    ) -> None:
        if self.tracker is None or self.run_id is None:
            return
        if self.reporter is not None:
            self.reporter.flush()
        if message:
            self.tracker.set_tags(self.run_id, {MESSAGE_TAG: message})
        self.tracker.finish(self.run_id, status, failure_reason)

    # TrialObserver: each Optuna trial is a nested child run tagged with its number.

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        with self._lock:
            self._trial_params[number] = params
        if self.reporter is not None:
            self.reporter.trial_started()
        if self.tracker is None or self.run_id is None:
            return
        tags = {**self.context.tags(), TRIAL_TAG: str(number)}
        name = f"{self.context.run_name or 'run'}-trial-{number}"
        run_id = self.tracker.start_run(name, tags, parent_run_id=self.run_id)
        self.tracker.log_params(run_id, params)
        with self._lock:
            self._trial_runs[number] = run_id

    def trial_run_id(self, number: int) -> str | None:
        """The child run of trial ``number``, once started."""
        with self._lock:
            return self._trial_runs.get(number)

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        if self.tracker is not None and (run_id := self._trial_runs.get(number)):
            self.tracker.log_metrics(run_id, epoch_series(metrics), step=epoch)

    def trial_finished(self, number: int, state: str, value: float | None, metrics: dict[str, float]) -> None:
        self.progress.say(
            trial_line(number, self._max_trials, state, value, self._trial_params.get(number, {}))
        )
        if self.reporter is not None:
            self.reporter.trial_finished(state, metrics)
        if self.tracker is None or not (run_id := self._trial_runs.get(number)):
            return
        self.tracker.log_metrics(run_id, metrics)
        self.tracker.set_tags(run_id, {TRIAL_STATE_TAG: state})
        self.tracker.finish(run_id, TRIAL_STATUS.get(state, "FAILED"))
