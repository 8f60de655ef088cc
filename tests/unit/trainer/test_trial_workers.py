"""Trial workers: real `kubeloop train` processes sharing one Optuna study in a real PostgreSQL, with a
real MLflow server: exactly maxTrials trials, one parent run, the best trial registered once; pruning on
intermediate values another process wrote; a worker SIGKILLed mid-trial loses only that trial."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress
from kubeloop.contracts.trial_workers import study_name
from kubeloop_trainer.study import RUN_ATTR, WORKER_ATTR
from tests.fixtures.trial_workers import Job, Worker, start_worker, stop_all
from tests.unit.trainer.builders import blobs, linear, spec_json, write_parquet

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]
_jobs = itertools.count(1)


def new_job(tmp_path: Path, mlflow_server: Any, storage_url: str, spec: str, count: int) -> Job:
    number = next(_jobs)
    return Job(
        name=f"hpo-{number}",
        uid=f"uid-hpo-{number}-{tmp_path.name}",
        spec_json=spec,
        tracking_uri=mlflow_server.tracking_uri,
        storage_url=storage_url,
        workdir=tmp_path / "workers",
        count=count,
    )


def load(job: Job) -> optuna.Study:
    return optuna.load_study(study_name=study_name(job.uid, job.name), storage=job.storage_url)


def runs_of(client: MlflowClient, job: Job) -> tuple[list[Run], list[Run]]:
    """(parent runs, child runs) of the job's experiment."""
    experiment = client.get_experiment_by_name(f"exp-{job.name}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def finish(workers: list[Worker]) -> None:
    try:
        for worker in workers:
            assert worker.wait() == 0, worker.log_tail()
    finally:
        stop_all(workers)


def tuning(max_trials: int, parallelism: int, **fields: Any) -> dict[str, Any]:
    return {
        "strategy": "random",
        "maxTrials": max_trials,
        "parallelism": parallelism,
        "storage": {"secretRef": {"name": "study-db", "key": "url"}},
        **fields,
    }


def test_three_workers_share_one_study(
    tmp_path: Path, mlflow_server: Any, mlflow_client: MlflowClient, postgres_url: str
) -> None:
    dataset = write_parquet(linear(n_rows=160), tmp_path / "linear.parquet")
    spec = spec_json(
        dataset,
        target="target",
        builtin={"algorithm": "random_forest", "task": "regression", "seed": 3},
        tuning=tuning(
            9,
            3,
            parallelTrials=2,  # two trial threads in each worker: six admitters for nine trials
            objective={"metric": "val_rmse", "direction": "minimize"},
            searchSpace={
                "n_estimators": {"type": "int", "low": 2, "high": 30},
                "max_depth": {"type": "int", "low": 1, "high": 6},
            },
        ),
        register={"modelName": f"shared-study-{tmp_path.name}", "alias": "best"},
    )
    job = new_job(tmp_path, mlflow_server, postgres_url, spec, count=3)
    workers = [start_worker(job, index) for index in range(3)]
    finish(workers)

    trials = load(job).get_trials()
    assert [t.number for t in trials] == list(range(9))  # exactly maxTrials, across three processes
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs[WORKER_ATTR] for t in trials} <= {0, 1, 2}

    parents, children = runs_of(mlflow_client, job)
    assert len(parents) == 1
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(int(c.data.tags["kubeloop.io/trial"]) for c in children) == list(range(9))
    assert all(c.info.status == "FINISHED" for c in children)
    assert {t.user_attrs[RUN_ATTR] for t in trials} == {c.info.run_id for c in children}

    summary = workers[0].summary()
    assert summary.mlflow_run_id == parent.info.run_id and summary.failure_reason is None
    best = summary.best_trial
    assert best is not None
    scores = {int(c.data.tags["kubeloop.io/trial"]): c.data.metrics["val_rmse"] for c in children}
    assert best.value == pytest.approx(min(scores.values()))
    assert best.params == load(job).best_trial.params
    for other in workers[1:]:
        assert (
            other.summary().mlflow_run_id == parent.info.run_id and other.summary().registered_model is None
        )

    registered = summary.registered_model
    assert registered is not None and registered.alias == "best"
    versions = mlflow_client.search_model_versions(f"name = '{registered.name}'")
    assert [(v.version, v.run_id) for v in versions] == [(registered.version, parent.info.run_id)]

    parent = mlflow_client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["kubeloop.io/trials"] == "9 completed, 0 pruned, 0 failed"
    progress = TrainingProgress.model_validate_json(parent.data.tags[PROGRESS_TAG])
    assert progress.trials is not None and progress.percent == 100.0
    assert progress.trials.model_dump() == {"total": 9, "running": 0, "complete": 9, "pruned": 0, "failed": 0}


def test_a_trial_is_pruned_on_another_processes_intermediate_values(
    tmp_path: Path, mlflow_server: Any, mlflow_client: MlflowClient, postgres_url: str
) -> None:
    """Two trials that another process reported (better than any real one at every epoch) are in the
    study before the worker starts: its MedianPruner reads them from PostgreSQL and prunes its trial."""
    dataset = write_parquet(blobs(n_rows=160), tmp_path / "blobs.parquet")
    epochs = 6
    spec = spec_json(
        dataset,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": epochs, "hiddenUnits": [8], "batchSize": 16},
        tuning=tuning(
            3,
            2,
            objective={"metric": "val_accuracy", "direction": "maximize"},
            searchSpace={"learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
        ),
    )
    job = new_job(tmp_path, mlflow_server, postgres_url, spec, count=2)
    other = optuna.create_study(
        study_name=study_name(job.uid, job.name), storage=job.storage_url, direction="maximize"
    )
    for _ in range(2):
        other.add_trial(
            optuna.trial.create_trial(value=2.0, intermediate_values=dict.fromkeys(range(epochs), 2.0))
        )
    worker = start_worker(job, 1)  # not the finaliser: it runs what the study admits, then leaves
    finish([worker])

    trials = load(job).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    pruned = trials[2]
    assert pruned.user_attrs[WORKER_ATTR] == 1
    assert list(pruned.intermediate_values) == [1]  # its first epoch (past the warm-up), of 6
    child = mlflow_client.get_run(pruned.user_attrs[RUN_ATTR])
    assert child.data.tags["kubeloop.io/trial-state"] == "PRUNED" and child.info.status == "KILLED"


def wait_for_running_trial(job: Job, worker: Worker) -> int:
    """The number of the trial ``worker`` is in the middle of (it reported an epoch)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log_tail()
        try:
            trials = load(job).get_trials()
        except KeyError:  # the study does not exist yet
            trials = []
        for trial in trials:
            if (
                trial.state == TrialState.RUNNING
                and trial.intermediate_values
                and RUN_ATTR in trial.user_attrs
            ):
                return trial.number
        time.sleep(0.2)
    raise TimeoutError(f"worker {worker.index} started no trial:\n{worker.log_tail()}")


def test_a_worker_killed_mid_trial_loses_only_that_trial(
    tmp_path: Path, mlflow_server: Any, mlflow_client: MlflowClient, postgres_url: str
) -> None:
    dataset = write_parquet(blobs(n_rows=400), tmp_path / "blobs.parquet")
    spec = spec_json(
        dataset,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 40, "hiddenUnits": [16], "batchSize": 8},
        tuning=tuning(
            5,
            3,
            pruning=False,
            objective={"metric": "val_accuracy", "direction": "maximize"},
            searchSpace={"learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
        ),
        register={"modelName": f"survivor-{tmp_path.name}"},
    )
    job = new_job(tmp_path, mlflow_server, postgres_url, spec, count=3)
    victim = start_worker(job, 2)
    workers = [victim]
    try:
        killed = wait_for_running_trial(job, victim)
        victim.process.kill()  # SIGKILL: no summary, no tell, no last heartbeat
        victim.process.wait()
        workers += [start_worker(job, 0), start_worker(job, 1)]
        finish(workers[1:])
    finally:
        stop_all(workers)

    trials = load(job).get_trials()
    assert len(trials) == 5
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [killed]
    assert all(t.state == TrialState.COMPLETE for t in trials if t.number != killed)
    assert trials[killed].user_attrs[WORKER_ATTR] == 2
    lost = mlflow_client.get_run(trials[killed].user_attrs[RUN_ATTR])
    assert lost.info.status == "FAILED" and lost.data.tags["kubeloop.io/trial-state"] == "FAIL"
    assert lost.data.tags["kubeloop.io/failure-reason"] == "WorkerLost"

    summary = workers[1].summary()
    assert summary.failure_reason is None and summary.best_trial is not None
    assert summary.best_trial.number != killed
    parents, children = runs_of(mlflow_client, job)
    assert len(parents) == 1 and len(children) == 5
    parent = mlflow_client.get_run(parents[0].info.run_id)
    assert parent.data.tags["kubeloop.io/trials"] == "4 completed, 0 pruned, 1 failed"
    progress = json.loads(parent.data.tags[PROGRESS_TAG])
    assert progress["trials"] == {"total": 5, "running": 0, "complete": 4, "pruned": 0, "failed": 1}
    assert summary.registered_model is not None
    assert len(mlflow_client.search_model_versions(f"name = '{summary.registered_model.name}'")) == 1
