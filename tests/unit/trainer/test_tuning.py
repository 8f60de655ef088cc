"""Hyperparameter search: Optuna trials as MLflow child runs; the best one is exported and registered."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from kubeloop.api.training import ParameterRange
from kubeloop_trainer.tuning import search_grid
from tests.unit.trainer.builders import blobs, linear, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = pytest.mark.unit


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    parent = client.get_run(parent_run_id)
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=100,
        )
    )


def test_grid_covers_choices_ints_and_spaced_floats() -> None:
    grid = search_grid(
        {
            "depth": ParameterRange(type="int", low=2, high=4),
            "rate": ParameterRange(type="float", low=0.001, high=0.1, log=True),
            "units": ParameterRange(type="categorical", choices=["8", "16"]),
        }
    )
    assert grid["depth"] == [2, 3, 4]
    assert grid["units"] == ["8", "16"]
    assert grid["rate"] == pytest.approx([0.001, 0.00316228, 0.01, 0.0316228, 0.1], rel=1e-5)


@pytest.mark.mlflow
def test_bayesian_search_picks_the_best_trial(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_parquet(linear(n_rows=160), tmp_path / "linear.parquet")
    code, summary = pod.train(
        dataset,
        target="target",
        builtin={"algorithm": "random_forest", "task": "regression", "seed": 3},
        tuning={
            "strategy": "bayesian",
            "maxTrials": 8,
            "parallelTrials": 2,
            "objective": {"metric": "val_rmse", "direction": "minimize"},
            "searchSpace": {
                "n_estimators": {"type": "int", "low": 2, "high": 30},
                "max_depth": {"type": "int", "low": 1, "high": 6},
            },
        },
        register={"modelName": "tuned-forest", "alias": "best"},
    )
    assert code == 0, summary.message
    best = summary.best_trial
    assert best is not None
    children = child_runs(mlflow_client, summary.mlflow_run_id or "")
    assert len(children) == 8
    by_trial = {int(run.data.tags["kubeloop.io/trial"]): run for run in children}
    assert sorted(by_trial) == list(range(8))
    assert all(run.info.status == "FINISHED" for run in children)
    scores = {number: run.data.metrics["val_rmse"] for number, run in by_trial.items()}
    assert best.value == pytest.approx(min(scores.values()))
    assert scores[best.number] == pytest.approx(best.value)
    winner = by_trial[best.number]
    assert {k: int(v) for k, v in winner.data.params.items()} == best.params
    parent = mlflow_client.get_run(summary.mlflow_run_id or "")
    assert parent.data.metrics["val_rmse"] == pytest.approx(best.value)
    assert parent.data.params["model.n_estimators"] == str(best.params["n_estimators"])
    assert parent.data.tags["kubeloop.io/trials"] == "8 completed, 0 pruned"
    version = mlflow_client.get_model_version_by_alias("tuned-forest", "best")
    assert version.run_id == parent.info.run_id


@pytest.mark.mlflow
def test_median_pruner_stops_bad_network_trials(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    dataset = write_parquet(blobs(n_rows=160), tmp_path / "blobs.parquet")
    code, summary = pod.train(
        dataset,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 5, "hiddenUnits": [8], "batchSize": 32},
        tuning={
            "strategy": "random",
            "maxTrials": 8,
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "searchSpace": {"learning_rate": {"type": "float", "low": 1e-6, "high": 0.3, "log": True}},
            "pruning": True,
        },
    )
    assert code == 0, summary.message
    children = child_runs(mlflow_client, summary.mlflow_run_id or "")
    states = {
        run.data.tags["kubeloop.io/trial"]: run.data.tags["kubeloop.io/trial-state"] for run in children
    }
    pruned = [run for run in children if run.data.tags["kubeloop.io/trial-state"] == "PRUNED"]
    assert len(states) == 8 and pruned, states
    for run in pruned:
        assert run.info.status == "KILLED"
        steps = [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "epoch_val_loss")]
        assert max(steps) < 5  # stopped before the last epoch
    completed = sum(state == "COMPLETE" for state in states.values())
    tag = mlflow_client.get_run(summary.mlflow_run_id or "").data.tags["kubeloop.io/trials"]
    assert tag == f"{completed} completed, {len(pruned)} pruned"
