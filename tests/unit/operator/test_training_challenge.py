"""The TrainingJob's challenger gate in the operator: the ChallengerGate condition and scores derived
from the trainer's verdict, the Warning when nothing moves, and drift -> retrain -> gate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeloop.api.challenge import ChallengeResult, GateOutcome
from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop.api.training import RegisteredModel, TrainingJobStatus
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.reconcile import reconcile_drift_monitor, reconcile_training_job
from kubeloop_operator.status.training import derive_training_status
from tests.unit.operator.test_reconcile_drift import DRIFT, SERVED, check_job
from tests.unit.operator.world import NS, World, condition, finish_job

pytestmark = pytest.mark.unit

CHALLENGE = {
    "champion": "models:/churn@champion",
    "dataset": {"uri": "s3://data/holdout.parquet"},
    "metric": "roc_auc",
    "margin": 0.01,
}
CHALLENGED = {
    "dataset": {"uri": "s3://data/train.parquet"},
    "register": {"modelName": "churn", "alias": "challenger"},
    "challenge": CHALLENGE,
}


def verdict(
    outcome: GateOutcome, challenger: float | None = 0.81, champion: float | None = 0.86
) -> ChallengeResult:
    return ChallengeResult(
        outcome=outcome,
        metric="roc_auc",
        direction="maximize",
        margin=0.01,
        champion="models:/churn@champion",
        champion_version=None if outcome == "FirstModel" else "3",
        champion_score=None if outcome == "FirstModel" else champion,
        challenger_score=challenger,
        rows=500,
        message=f"{outcome}: challenger roc_auc {challenger} vs champion {champion}",
    )


def summary_of(outcome: GateOutcome) -> TrainingSummary:
    alias = "challenger" if outcome in ("Passed", "FirstModel") else None
    return TrainingSummary(
        mlflow_run_id="r1",
        registered_model=RegisteredModel(name="churn", version="4", alias=alias),
        challenge=verdict(outcome),
    )


def job(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "fit"}, "status": {"conditions": list(conditions), "active": 1}}


def pod(message: str = "", phase: str = "Running") -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0, "message": message}} if message else {"running": {}}
    return {
        "metadata": {"name": "fit-x"},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


COMPLETE = {"type": "Complete", "status": "True"}
FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}


def derive(
    job_: dict[str, Any] | None, pods: list[dict[str, Any]], challenged: bool = True
) -> TrainingJobStatus:
    return derive_training_status(TrainingJobStatus(), job_, pods, 1, False, "http://mlflow", challenged)


def gate(status: TrainingJobStatus) -> tuple[str, str, str] | None:
    found = next((c for c in status.conditions if c.type == "ChallengerGate"), None)
    return (found.status, found.reason, found.message) if found else None


@pytest.mark.parametrize(
    ("outcome", "status", "reason", "succeeded_message"),
    [
        ("Passed", "True", "ChampionBeaten", "registered churn version 4 as challenger"),
        ("FirstModel", "True", "NoChampion", "registered churn version 4 as challenger"),
        ("NotBeaten", "False", "ChampionNotBeaten", "registered churn version 4 without alias: NotBeaten: "),
        ("NotComparable", "False", "ChampionNotComparable", "registered churn version 4 without alias: "),
    ],
)
def test_the_gate_condition_follows_the_verdict(
    outcome: GateOutcome, status: str, reason: str, succeeded_message: str
) -> None:
    derived = derive(job(COMPLETE), [pod(encode(summary_of(outcome)))])
    assert derived.phase == "Succeeded" and derived.challenge == verdict(outcome)
    found = gate(derived)
    assert found is not None and found[:2] == (status, reason)
    assert "challenger roc_auc 0.81" in found[2]
    succeeded = next(c for c in derived.conditions if c.type == "Succeeded")
    assert succeeded.status == "True"  # the run succeeded even when the gate said no
    assert succeeded.message.startswith(succeeded_message)
    wire = derived.wire()
    assert wire["challenge"]["challengerScore"] == 0.81 and wire["challenge"]["outcome"] == outcome


def test_no_verdict_yet_or_none_to_come() -> None:
    assert gate(derive(None, [])) == (
        "Unknown",
        "AwaitingEvaluation",
        "the new model is compared with the champion after training",
    )
    assert gate(derive(job(), [pod()]))[:2] == ("Unknown", "AwaitingEvaluation")  # type: ignore[index]
    failed = derive(job(FAILED), [pod(encode(TrainingSummary(failure_reason="BadData", message="x")))])
    assert failed.phase == "Failed" and failed.challenge is None
    assert gate(failed)[:2] == ("Unknown", "NotEvaluated")  # type: ignore[index]


def test_without_a_challenge_there_is_no_gate_condition() -> None:
    assert gate(derive(job(COMPLETE), [pod(encode(TrainingSummary()))], challenged=False)) is None
    stale = set_condition([], "ChallengerGate", False, "ChampionNotBeaten", "old", 1)
    previous = TrainingJobStatus(conditions=stale)
    now = derive_training_status(previous, job(), [pod()], 2, False, "http://mlflow", False)
    assert gate(now) is None, "a challenge removed from the spec takes its condition along"


def test_a_lost_gate_is_a_warning_and_the_verdict_outlives_the_job() -> None:
    world = World()
    world.create("TrainingJob", "fit", CHALLENGED)
    reconcile_training_job(world.ctx, NS, "fit")
    assert condition(world.status("TrainingJob", "fit"), "ChallengerGate")["reason"] == "AwaitingEvaluation"
    finish_job(world, "fit", encode(summary_of("NotBeaten")))
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Succeeded" and status["challenge"]["outcome"] == "NotBeaten"
    assert status["registeredModel"] == {"name": "churn", "version": "4"}
    lost = condition(status, "ChallengerGate")
    assert (lost["status"], lost["reason"]) == ("False", "ChampionNotBeaten")
    assert ("Warning", "ChampionNotBeaten", lost["message"]) in world.events
    del world.api.objects[f"/apis/batch/v1/namespaces/{NS}/jobs/fit"]  # ttlSecondsAfterFinished
    world.ctx.remember_applied(("TrainingJob", NS, "fit"), None)
    reconcile_training_job(world.ctx, NS, "fit")
    assert world.status("TrainingJob", "fit")["challenge"]["outcome"] == "NotBeaten"


def test_drift_retrains_with_the_gate() -> None:
    """The DriftMonitor's template carries the challenge; the retrain it creates is gated."""
    world = World()
    world.create("ModelDeployment", "serve", SERVED)
    monitor = copy.deepcopy(DRIFT)
    monitor["action"]["trainingJobTemplate"] = {"spec": CHALLENGED}  # type: ignore[index]
    world.create("DriftMonitor", "watch", monitor)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    check_job(world, "watch-check-1", "2026-01-01T02:00:00Z")
    reconcile_drift_monitor(world.ctx, NS, "watch")
    retrain = world.status("DriftMonitor", "watch")["lastTriggeredTrainingJob"]
    assert world.get("TrainingJob", retrain)["spec"]["challenge"] == CHALLENGE
    reconcile_training_job(world.ctx, NS, retrain)
    job_spec = world.get("Job", retrain)["spec"]["template"]["spec"]["containers"][0]["env"]
    training_spec = next(e["value"] for e in job_spec if e["name"] == "KUBELOOP_TRAINING_SPEC")
    assert '"challenge":{"champion":"models:/churn@champion"' in training_spec
    assert condition(world.status("TrainingJob", retrain), "ChallengerGate")["reason"] == "AwaitingEvaluation"
