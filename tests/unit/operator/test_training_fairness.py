"""The TrainingJob's fairness gate in the operator: status.fairness and the FairnessGate condition
derived from the trainer's verdict, the Succeeded message when the model was kept out of the
registry, and the Warning event; the whole reconcile against the fake API server."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.fairness import FairnessOutcome, FairnessResult, FairnessThresholds, GroupMetrics
from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop.api.training import RegisteredModel, TrainingJobStatus
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.reconcile import reconcile_training_job
from kubeloop_operator.status.training import derive_training_status
from tests.unit.operator.world import NS, World, condition, finish_job

pytestmark = pytest.mark.unit

GATED = {
    "dataset": {"uri": "s3://data/loans.parquet"},
    "register": {"modelName": "loans", "alias": "champion"},
    "fairness": {"sensitiveAttributes": ["sex"], "thresholds": {"demographicParityDifference": 0.1}},
}
COMPLETE = {"type": "Complete", "status": "True"}
FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}


def verdict(outcome: FairnessOutcome) -> FairnessResult:
    dpd = {"Passed": 0.02, "Failed": 0.42, "NotEvaluable": None}[outcome]
    return FairnessResult(
        outcome=outcome,
        sensitive_attributes=["sex"],
        positive_class="approved",
        rows=1200,
        min_group_size=30,
        demographic_parity_difference=dpd,
        thresholds=FairnessThresholds(demographic_parity_difference=0.1),
        groups=[
            GroupMetrics(
                group=f"sex={s}",
                count=600,
                accuracy=0.8,
                selection_rate=rate,
                true_positive_rate=0.7,
                false_positive_rate=0.2,
            )
            for s, rate in (("F", 0.29), ("M", 0.71))
        ],
        message=f"{outcome}: demographicParityDifference {dpd} (sex=F vs sex=M)",
    )


def summary_of(outcome: FairnessOutcome) -> TrainingSummary:
    registered = RegisteredModel(name="loans", version="1", alias="champion") if outcome == "Passed" else None
    return TrainingSummary(mlflow_run_id="r1", registered_model=registered, fairness=verdict(outcome))


def job(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "fit"}, "status": {"conditions": list(conditions), "active": 1}}


def pod(message: str = "") -> dict[str, Any]:
    state = {"terminated": {"exitCode": 0, "message": message}} if message else {"running": {}}
    return {
        "metadata": {"name": "fit-x"},
        "status": {"phase": "Running", "containerStatuses": [{"state": state}]},
    }


def derive(job_: dict[str, Any] | None, pods: list[dict[str, Any]], gated: bool = True) -> TrainingJobStatus:
    return derive_training_status(
        TrainingJobStatus(), job_, pods, 1, False, "http://mlflow", fairness_gated=gated
    )


def gate(status: TrainingJobStatus) -> tuple[str, str, str] | None:
    found = next((c for c in status.conditions if c.type == "FairnessGate"), None)
    return (found.status, found.reason, found.message) if found else None


@pytest.mark.parametrize(
    ("outcome", "status", "reason", "succeeded_message"),
    [
        ("Passed", "True", "FairnessWithinThresholds", "registered loans version 1 as champion"),
        (
            "Failed",
            "False",
            "FairnessThresholdExceeded",
            "training completed; the model was not registered: Failed",
        ),
        (
            "NotEvaluable",
            "False",
            "GroupsTooSmall",
            "training completed; the model was not registered: NotEval",
        ),
    ],
)
def test_the_gate_condition_follows_the_verdict(
    outcome: FairnessOutcome, status: str, reason: str, succeeded_message: str
) -> None:
    derived = derive(job(COMPLETE), [pod(encode(summary_of(outcome)))])
    assert derived.phase == "Succeeded" and derived.fairness == verdict(outcome)
    assert gate(derived) == (status, reason, verdict(outcome).message)
    succeeded = next(c for c in derived.conditions if c.type == "Succeeded")
    assert succeeded.status == "True"  # the run succeeded even when the gate said no
    assert succeeded.message.startswith(succeeded_message)
    wire = derived.wire()
    assert wire["fairness"]["outcome"] == outcome and wire["fairness"]["groups"][0]["selectionRate"] == 0.29


def test_no_verdict_yet_or_none_to_come_or_no_gate() -> None:
    assert gate(derive(None, []))[:2] == ("Unknown", "AwaitingEvaluation")  # type: ignore[index]
    failed = derive(job(FAILED), [pod(encode(TrainingSummary(failure_reason="BadData", message="x")))])
    assert failed.phase == "Failed" and failed.fairness is None
    assert gate(failed)[:2] == ("Unknown", "NotEvaluated")  # type: ignore[index]
    assert gate(derive(job(COMPLETE), [pod(encode(TrainingSummary()))], gated=False)) is None
    stale = TrainingJobStatus(conditions=set_condition([], "FairnessGate", False, "GroupsTooSmall", "old", 1))
    now = derive_training_status(stale, job(), [pod()], 2, False, "http://mlflow")
    assert gate(now) is None, "a fairness gate removed from the spec takes its condition along"


def test_a_refused_model_is_a_warning_through_the_whole_reconcile() -> None:
    world = World()
    world.create("TrainingJob", "fit", GATED)
    reconcile_training_job(world.ctx, NS, "fit")
    assert condition(world.status("TrainingJob", "fit"), "FairnessGate")["reason"] == "AwaitingEvaluation"
    finish_job(world, "fit", encode(summary_of("Failed")))
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Succeeded" and "registeredModel" not in status
    assert status["fairness"]["demographicParityDifference"] == 0.42
    refused = condition(status, "FairnessGate")
    assert (refused["status"], refused["reason"]) == ("False", "FairnessThresholdExceeded")
    assert ("Warning", "FairnessThresholdExceeded", refused["message"]) in world.events
