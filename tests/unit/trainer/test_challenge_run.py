"""The champion/challenger gate in a whole `kubeloop train` run against a real MLflow server:
a better model gets the challenger alias, a worse one is registered without it, the champion's
alias never moves, and the operator reads the verdict the trainer left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from kubeloop.api.summaries import TrainingSummary
from kubeloop.api.training import TrainingJobStatus
from kubeloop.registry import resolve_registered_model
from kubeloop_operator.status.training import derive_training_status
from kubeloop_trainer.onnx_export import onnx_outputs
from kubeloop_trainer.tags import CHALLENGE_CHAMPION_TAG, CHALLENGE_TAG
from tests.unit.trainer.builders import additive, write_csv, write_parquet
from tests.unit.trainer.conftest import PodEnvironment

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]

STUMP = {"n_estimators": 1, "max_depth": 1}  # one split on one feature: a weak but real champion


def challenge(
    model: str, evaluation: Path, alias: str = "champion", metric: str = "roc_auc"
) -> dict[str, Any]:
    return {"champion": f"models:/{model}@{alias}", "dataset": {"uri": str(evaluation)}, "metric": metric}


def what_the_operator_shows(message: str) -> TrainingJobStatus:
    """The TrainingJob status the operator derives from the pod's termination message."""
    job = {
        "metadata": {"name": "retrain"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
    }
    pod = {
        "metadata": {"name": "retrain-x", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": message}}}]},
    }
    return derive_training_status(TrainingJobStatus(), job, [pod], 1, False, "http://mlflow", challenged=True)


def gate_condition(status: TrainingJobStatus) -> tuple[str, str, str]:
    found = next(c for c in status.conditions if c.type == "ChallengerGate")
    return found.status, found.reason, found.message


def served_roc_auc(uri: str, pod: PodEnvironment, evaluation: Path, tmp_path: Path) -> float:
    """The champion's ROC-AUC computed independently: the file a server would load, on the same rows."""
    location = resolve_registered_model(uri, pod.tracking_uri).location
    local = Path(
        download_artifacts(location, dst_path=str(tmp_path / "served"), tracking_uri=pod.tracking_uri)
    )
    model_bytes = next(local.rglob("model.onnx")).read_bytes()

    data = pq.read_table(evaluation)
    x = np.stack([data.column(f"f{i}").to_numpy() for i in range(4)], axis=1).astype(np.float32)
    churn = np.array(data.column("label").to_pylist()) == "churn"  # classes sorted: churn=0, stay=1
    probabilities = onnx_outputs(model_bytes, x, "classification")
    return float(roc_auc_score(~churn, probabilities[:, 1]))


def test_good_challenger_gets_the_alias_bad_one_does_not(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    train = write_csv(additive(n_rows=600, seed=1), tmp_path / "train.csv")
    shuffled = write_csv(additive(n_rows=600, seed=1, shuffle_labels=True), tmp_path / "shuffled.csv")
    evaluation = write_parquet(additive(n_rows=500, seed=2), tmp_path / "holdout.parquet")
    code, champion = pod.train(
        train,
        builtin={"algorithm": "gradient_boosting"},
        hyperparameters=STUMP,
        register={"modelName": "churn-gate", "alias": "champion"},
    )
    assert code == 0, champion.message
    gate = challenge("churn-gate", evaluation)

    code, good = pod.train(
        train,
        builtin={"algorithm": "logistic_regression"},
        register={"modelName": "churn-gate", "alias": "challenger"},
        challenge=gate,
    )
    assert code == 0, good.message
    good_message = pod.termination_message
    code, bad = pod.train(
        shuffled,
        builtin={"algorithm": "logistic_regression"},
        register={"modelName": "churn-gate", "alias": "challenger"},
        challenge=gate,
    )
    assert code == 0, bad.message  # training worked; the gate said no: not a failed run
    bad_message = pod.termination_message

    assert good.challenge is not None and bad.challenge is not None
    print(f"\ngood challenger: {good.challenge.message}\nbad challenger:  {bad.challenge.message}")
    assert good.challenge.outcome == "Passed"
    assert bad.challenge.outcome == "NotBeaten"
    champion_score = served_roc_auc("models:/churn-gate@champion", pod, evaluation, tmp_path)
    for result in (good.challenge, bad.challenge):
        assert result.champion_version == "1" and result.rows == 500 and result.metric == "roc_auc"
        assert result.champion_score == pytest.approx(
            champion_score, abs=1e-9
        )  # the served file, the same rows
    assert good.challenge.challenger_score is not None and bad.challenge.challenger_score is not None
    assert good.challenge.challenger_score > champion_score > bad.challenge.challenger_score
    assert bad.challenge.challenger_score < 0.6  # shuffled labels: chance

    # registry: the good version got the alias; the bad one is there for the record, without it
    assert good.registered_model is not None and bad.registered_model is not None
    assert (good.registered_model.version, good.registered_model.alias) == ("2", "challenger")
    assert (bad.registered_model.version, bad.registered_model.alias) == ("3", None)
    assert mlflow_client.get_model_version_by_alias("churn-gate", "champion").version == "1"
    assert mlflow_client.get_model_version_by_alias("churn-gate", "challenger").version == "2"
    assert mlflow_client.get_registered_model("churn-gate").aliases == {"champion": "1", "challenger": "2"}
    losing = mlflow_client.get_model_version("churn-gate", "3")
    assert losing.tags[CHALLENGE_TAG] == "NotBeaten"
    assert losing.tags[CHALLENGE_CHAMPION_TAG] == "models:/churn-gate@champion (version 1)"
    assert mlflow_client.get_model_version("churn-gate", "2").tags[CHALLENGE_TAG] == "Passed"

    # the MLflow runs carry both scores (every metric of the task) and the evaluation data
    for summary in (good, bad):
        run = mlflow_client.get_run(summary.mlflow_run_id or "")
        assert summary.challenge is not None
        metrics = run.data.metrics
        assert metrics["challenge.challenger_roc_auc"] == pytest.approx(summary.challenge.challenger_score)
        assert metrics["challenge.champion_roc_auc"] == pytest.approx(champion_score)
        assert {"challenge.challenger_accuracy", "challenge.champion_f1"} <= set(metrics)
        assert run.data.params["challenge.dataset.rows"] == "500"
        assert run.data.params["challenge.champion"] == "models:/churn-gate@champion"
        assert run.data.tags[CHALLENGE_TAG] == summary.challenge.outcome

    # the operator's view of what each pod left
    passed, failed = what_the_operator_shows(good_message), what_the_operator_shows(bad_message)
    assert passed.challenge == good.challenge and failed.challenge == bad.challenge
    assert gate_condition(passed)[:2] == ("True", "ChampionBeaten")
    status, reason, message = gate_condition(failed)
    assert (status, reason) == ("False", "ChampionNotBeaten")
    assert f"{bad.challenge.challenger_score:.6g}" in message and f"{champion_score:.6g}" in message
    assert failed.phase == "Succeeded" and failed.registered_model == bad.registered_model
    succeeded = next(c for c in failed.conditions if c.type == "Succeeded")
    assert "version 3 without alias: champion not beaten" in succeeded.message


def test_without_a_champion_the_first_model_passes(
    pod: PodEnvironment, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    train = write_csv(additive(n_rows=300, seed=3), tmp_path / "train.csv")
    evaluation = write_csv(additive(n_rows=200, seed=4), tmp_path / "holdout.csv")
    spec: dict[str, Any] = {
        "builtin": {"algorithm": "logistic_regression"},
        "register": {"modelName": "fresh", "alias": "challenger"},
        "challenge": challenge("fresh", evaluation, metric="accuracy"),
    }
    first: list[TrainingSummary] = []
    for _ in range(2):  # no registered model at all; then a model, but no champion alias on it
        code, summary = pod.train(train, **spec)
        assert code == 0, summary.message
        first.append(summary)
        assert summary.challenge is not None and summary.challenge.outcome == "FirstModel"
        assert summary.challenge.champion_score is None and summary.challenge.challenger_score is not None
        assert summary.challenge.challenger_score > 0.7
        status, reason, message = gate_condition(what_the_operator_shows(pod.termination_message))
        assert (status, reason) == (
            "True",
            "NoChampion",
        ) and "no champion at models:/fresh@champion" in message
    assert [s.registered_model.alias for s in first if s.registered_model] == ["challenger", "challenger"]
    assert mlflow_client.get_registered_model("fresh").aliases == {"challenger": "2"}


def test_evaluation_data_that_cannot_be_read_fails_before_training(
    pod: PodEnvironment, tmp_path: Path
) -> None:
    train = write_csv(additive(n_rows=100), tmp_path / "train.csv")
    code, summary = pod.train(
        train,
        register={"modelName": "never", "alias": "challenger"},
        challenge=challenge("never", tmp_path / "missing.parquet"),
    )
    assert (code, summary.failure_reason) == (1, "BadData")
    assert "missing.parquet" in (summary.message or "")
