"""``kubeloop train`` as one of ``tuning.parallelism`` trial workers sharing one study in PostgreSQL.

Every worker loads the study (named after the TrainingJob's uid), joins the one MLflow parent run of
the job (created once, under the study's lock, its id kept in the study's user attributes) and runs
trials as long as the study admits them (``kubeloop_trainer.study``), ``parallelTrials`` at a time;
each trial is an MLflow child run. After each trial the worker writes the study's trial counts into
the parent run's progress tag. Worker 0 then waits until every admitted trial has ended (reaping those
of killed workers by heartbeat), retrains the best trial's parameters (same seed and split) and
publishes that model as a single run would: test metrics, ONNX export, gates, registration. Its
summary is the job's; it is kept in the study, so a replaced worker 0 does not register twice.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress
from kubeloop.api.summaries import TrainingSummary, decode, encode
from kubeloop.api.training import Trial, Tuning
from kubeloop.contracts.trial_workers import TrialWorker, study_name
from kubeloop_trainer.context import RunContext
from kubeloop_trainer.errors import InvalidSpecError, TrainerError
from kubeloop_trainer.progress import Progress
from kubeloop_trainer.provenance import code_version, environment
from kubeloop_trainer.recording import Recorder, open_tracker
from kubeloop_trainer.runner import Outcome, Prepared, failure, prepare, publish, run_params
from kubeloop_trainer.stopping import raise_if_stopped, stop_requested
from kubeloop_trainer.study import (
    RUN_ATTR,
    WORKER_ATTR,
    SharedStudy,
    StaleTrialCallback,
    admit,
    counts,
    finished,
    heartbeat,
    open_study,
)
from kubeloop_trainer.tags import TRIAL_STATE_TAG, TRIALS_TAG
from kubeloop_trainer.tracking import Tracker
from kubeloop_trainer.training import attempt
from kubeloop_trainer.tuning import Search, pruner_for, sampler_for, suggest

PARENT_ATTR = "kubeloop.io/mlflow-parent-run"
SUMMARY_ATTR = "kubeloop.io/summary"
WORKER_LOST = "WorkerLost"


class TrialRuns:
    """The recorder's child runs, each also noted on its trial (so a reaped trial's run can be failed)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.trials: dict[int, optuna.Trial] = {}

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        self.recorder.trial_started(number, params)
        run_id = self.recorder.trial_run_id(number)
        if run_id is not None:
            self.trials[number].set_user_attr(RUN_ATTR, run_id)

    def trial_epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        self.recorder.trial_epoch(number, epoch, metrics)

    def trial_finished(self, number: int, state: str, value: float | None, metrics: dict[str, float]) -> None:
        self.recorder.trial_finished(number, state, value, metrics)


def stale_trial_callback(tracker: Tracker, progress: Progress) -> StaleTrialCallback:
    """Optuna failed a trial whose worker stopped beating: its child run fails too (best effort: the
    study, not MLflow, is what counts the trial)."""

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        progress.say(f"trial {trial.number} FAIL: its worker {trial.user_attrs.get(WORKER_ATTR)} stopped")
        if run_id := trial.user_attrs.get(RUN_ATTR):
            try:
                tracker.set_tags(run_id, {TRIAL_STATE_TAG: "FAIL"})
                tracker.finish(run_id, "FAILED", WORKER_LOST)
            except Exception as error:
                progress.say(f"could not mark the run of trial {trial.number} failed: {error}")

    return on_stale


def write_progress(shared: SharedStudy, recorder: Recorder, total: int) -> None:
    trials = counts(shared, total)
    done = trials.complete + trials.pruned + trials.failed
    report = TrainingProgress(percent=100.0 * done / total, trials=trials, updated=datetime.now(UTC))
    recorder.tags({PROGRESS_TAG: report.model_dump_json(by_alias=True, exclude_none=True)})


def join_parent_run(context: RunContext, shared: SharedStudy, prepared: Prepared, recorder: Recorder) -> None:
    """The job's one parent run: the first worker creates it under the lock, the others find its id."""
    tracker = recorder.tracker
    assert tracker is not None
    with shared.locked():
        run_id = shared.study.user_attrs.get(PARENT_ATTR)
        created = run_id is None
        if run_id is None:
            run_id = tracker.start_run(
                context.run_name, {**context.tags(), **code_version(), **environment()}
            )
            shared.study.set_user_attr(PARENT_ATTR, run_id)
    recorder.run_id, recorder.run_url = str(run_id), tracker.run_url(str(run_id))
    if created:
        recorder.params({**run_params(context.spec, prepared), "tuning.study": shared.study.study_name})
        recorder.progress.say(f"MLflow run {run_id}: {recorder.run_url or tracker.tracking_uri}")


def run_one(search: Search, trial: optuna.Trial) -> tuple[TrialState, float | None]:
    try:
        return TrialState.COMPLETE, search(trial)
    except optuna.TrialPruned:
        return TrialState.PRUNED, None
    except TrainerError:  # the spec or data, or a stop: every trial would fail the same way
        raise
    except Exception:  # this trial's own failure: the study goes on
        traceback.print_exc()
        return TrialState.FAIL, None


def trial_loop(
    shared: SharedStudy, search: Search, runs: TrialRuns, tuning: Tuning, worker: TrialWorker
) -> int:
    ran = 0
    while not stop_requested() and (trial := admit(shared, tuning.max_trials, worker.index)) is not None:
        runs.trials[trial.number] = trial
        try:
            with heartbeat(shared, trial):
                state, value = run_one(search, trial)
        except TrainerError:
            shared.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        # skip_if_finished: reaped meanwhile (missed heartbeats); the reaper already failed it
        shared.study.tell(trial, value, state=state, skip_if_finished=True)
        write_progress(shared, runs.recorder, tuning.max_trials)
        ran += 1
    raise_if_stopped()
    return ran


def run_workers(
    context: RunContext, shared: SharedStudy, prepared: Prepared, recorder: Recorder, worker: TrialWorker
) -> int:
    tuning = context.spec.tuning
    assert tuning is not None
    runs = TrialRuns(recorder)
    search = Search(tuning, prepared.recipe, prepared.data, context.spec.builtin.cross_validation_folds, runs)
    with ThreadPoolExecutor(tuning.parallel_trials, thread_name_prefix="trial") as pool:
        loops = [
            pool.submit(trial_loop, shared, search, runs, tuning, worker)
            for _ in range(tuning.parallel_trials)
        ]
        return sum(loop.result() for loop in loops)


def finalise(
    context: RunContext, shared: SharedStudy, prepared: Prepared, recorder: Recorder
) -> TrainingSummary:
    """Worker 0, once every trial ended: the best trial's model, published like a single run's."""
    tuning = context.spec.tuning
    assert tuning is not None
    while not finished(shared, tuning.max_trials):
        raise_if_stopped()
        time.sleep(shared.heartbeat_seconds)
    if isinstance(done := decode(str(shared.study.user_attrs.get(SUMMARY_ATTR, ""))), TrainingSummary):
        return done  # a replaced worker 0: the job was finalised already
    write_progress(shared, recorder, tuning.max_trials)
    trials = counts(shared, tuning.max_trials)
    recorder.tags(
        {TRIALS_TAG: f"{trials.complete} completed, {trials.pruned} pruned, {trials.failed} failed"}
    )
    completed = shared.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise InvalidSpecError(
            f"no trial of {tuning.max_trials} completed ({trials.pruned} pruned, {trials.failed} failed)"
        )
    best = shared.study.best_trial
    assert best.value is not None  # a COMPLETE trial has its value
    params = suggest(FixedTrial(best.params), tuning.search_space)
    recipe = dataclasses.replace(
        prepared.recipe, hyperparameters={**prepared.recipe.hyperparameters, **params}
    )
    recorder.progress.say(f"best trial {best.number} (value {best.value:.4g}): retraining {params}")
    result = attempt(recipe, prepared.data, context.spec.builtin.cross_validation_folds)
    best_trial = Trial(number=best.number, value=float(best.value), params=params)
    summary = publish(context, prepared, Outcome(result.model, result.metrics, best_trial), recorder)
    shared.study.set_user_attr(SUMMARY_ATTR, encode(summary))
    recorder.finish("FINISHED")
    return summary


def run_trials(context: RunContext, worker: TrialWorker) -> TrainingSummary:
    """One trial worker's part of the job; never raises: failures come back as a summary."""
    tuning = context.spec.tuning
    progress = Progress()
    recorder: Recorder | None = None
    try:
        if tuning is None:
            raise InvalidSpecError("a trial worker needs spec.tuning")
        tracker = open_tracker(context)
        recorder = Recorder(context, tracker, progress)
        prepared = prepare(context.spec)
        recipe = prepared.recipe
        shared = open_study(
            worker.storage_url,
            study_name(context.job.uid, context.run_name),
            tuning.objective.direction,
            sampler_for(tuning, recipe.seed + worker.index),  # workers must not draw the same points
            pruner_for(tuning, recipe.algorithm),
            worker.heartbeat_seconds,
            stale_trial_callback(tracker, progress),
        )
        join_parent_run(context, shared, prepared, recorder)
        progress.say(f"trial worker {worker.index + 1}/{worker.count} joins study {shared.study.study_name}")
        ran = run_workers(context, shared, prepared, recorder, worker)
        if not worker.is_finaliser:
            message = f"trial worker {worker.index}: {ran} trials"
            return TrainingSummary(
                mlflow_run_id=recorder.run_id, mlflow_run_url=recorder.run_url, message=message
            )
        return finalise(context, shared, prepared, recorder)
    except TrainerError as error:
        return failure(error.reason, str(error), recorder if worker.is_finaliser else None)
    except MemoryError as error:
        return failure("OOM", f"out of memory: {error}", recorder if worker.is_finaliser else None)
    except Exception as error:
        traceback.print_exc()
        return failure("Error", f"{type(error).__name__}: {error}", recorder if worker.is_finaliser else None)
