"""Status derivation is pure: observed children in, status out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeloop.api.deployment_status import ModelDeploymentStatus
from kubeloop.api.drift import DriftMonitorStatus, FeatureResult
from kubeloop.api.summaries import DriftSummary, TrainingSummary, decode, encode
from kubeloop.api.training import RegisteredModel, TrainingJobStatus
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.status.drift import apply_check, should_retrain
from kubeloop_operator.status.serving import derive_serving_status
from kubeloop_operator.status.training import derive_training_status

pytestmark = pytest.mark.unit


def job(conditions: list[dict[str, str]] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"conditions": conditions or [], **status},
    }


def terminated_pod(message: str, code: int = 0, reason: str = "Completed") -> dict[str, Any]:
    state = {"terminated": {"exitCode": code, "reason": reason, "message": message}}
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:01Z"},
        "status": {"containerStatuses": [{"state": state}]},
    }


T1, T2, T3 = (datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in (1, 2, 3))
TRAINING, SERVING, DRIFT = TrainingJobStatus(), ModelDeploymentStatus(), DriftMonitorStatus()


def derive_training(*args: Any) -> dict[str, Any]:
    return derive_training_status(TRAINING, *args).wire()


def derive_serving(*args: Any) -> dict[str, Any]:
    return derive_serving_status(SERVING, *args).wire()


def test_condition_transition_time_moves_only_on_change() -> None:
    first = set_condition([], "Ready", True, "Available", "ok", 1, at=T1)
    same = set_condition(first, "Ready", True, "Available", "still ok", 2, at=T2)
    flipped = set_condition(same, "Ready", False, "RollingOut", "x", 3, at=T3)
    assert same[0].last_transition_time == T1 and same[0].observed_generation == 2
    assert flipped[0].last_transition_time == T3 and flipped[0].status == "False"
    assert flipped[0].wire()["lastTransitionTime"] == "2026-01-01T03:00:00Z"
    assert set_condition([], "Succeeded", False, "not a reason!", "m", 1)[0].reason == "Unknown"


def test_training_phases() -> None:
    assert derive_training(None, [], 1, False, "http://m")["phase"] == "Pending"
    assert derive_training(job(active=1), [], 1, False, "http://m")["phase"] == "Pending"
    running = [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}]
    assert derive_training(job(active=1), running, 1, False, "http://m")["phase"] == "Running"
    assert derive_training(job(), [], 1, True, "http://m")["phase"] == "Suspended"


def test_training_success_reads_the_summary() -> None:
    summary = TrainingSummary(
        mlflow_run_id="abc",
        metrics={"val_f1": 0.91},
        registered_model=RegisteredModel(name="churn", version="4"),
    )
    done = job(
        [{"type": "Complete", "status": "True"}],
        startTime="2026-01-01T01:00:00Z",
        completionTime="2026-01-01T02:00:00Z",
    )
    status = derive_training(done, [terminated_pod(encode(summary))], 2, False, "http://mlflow")
    assert status["phase"] == "Succeeded"
    assert status["mlflowRunId"] == "abc"
    assert status["mlflowRunUrl"] == "http://mlflow/#/runs/abc"
    assert status["metrics"] == {"val_f1": 0.91}
    assert status["registeredModel"] == {"name": "churn", "version": "4"}
    assert status["observedGeneration"] == 2
    succeeded = status["conditions"][0]
    assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed")


def test_a_disrupted_pod_that_was_replaced_does_not_speak_for_the_run() -> None:
    evicted = terminated_pod(
        encode(TrainingSummary(mlflow_run_id="evicted", failure_reason="Terminated", message="SIGTERM")), 1
    )
    evicted["status"]["conditions"] = [
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    ]
    replacement = {
        "metadata": {"name": "p2", "creationTimestamp": "2026-01-01T00:05:00Z"},
        "status": {"phase": "Running"},
    }
    running = derive_training(job(active=1), [evicted, replacement], 1, False, "http://m")
    assert running["phase"] == "Running" and "mlflowRunId" not in running
    resumed = terminated_pod(encode(TrainingSummary(mlflow_run_id="resumed")))
    resumed["metadata"] = replacement["metadata"]
    done = job([{"type": "Complete", "status": "True"}])
    assert derive_training(done, [evicted, resumed], 1, False, "http://m")["mlflowRunId"] == "resumed"
    # the newest pod, disrupted or not, is the run's: its summary says why it stopped
    assert derive_training(job(active=1), [evicted], 1, False, "http://m")["mlflowRunId"] == "evicted"


@pytest.mark.parametrize(
    ("pods", "job_reason", "reason"),
    [
        ([terminated_pod("", 137, "OOMKilled")], "BackoffLimitExceeded", "OOMKilled"),
        ([], "DeadlineExceeded", "DeadlineExceeded"),
        (
            [
                terminated_pod(
                    encode(TrainingSummary(failure_reason="BadData", message="no column y")), 1, "Error"
                )
            ],
            "BackoffLimitExceeded",
            "BadData",
        ),
    ],
)
def test_training_failure_reasons(pods: list[dict[str, Any]], job_reason: str, reason: str) -> None:
    failed = job(
        [
            {
                "type": "Failed",
                "status": "True",
                "reason": job_reason,
                "message": "m",
                "lastTransitionTime": "2026-01-01T03:00:00Z",
            }
        ]
    )
    status = derive_training(failed, pods, 1, False, "http://m")
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == reason
    assert status["completionTime"] == "2026-01-01T03:00:00Z"
    assert status["conditions"][0]["status"] == "False"


def deployment(replicas: int, ready: int, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_serving_ready_needs_rollout_and_replicas() -> None:
    ready = derive_serving([deployment(2, 2)], 3, 2, "u", None, None)
    assert ready["conditions"][0]["status"] == "True" and ready["readyReplicas"] == 2
    rolling = derive_serving([deployment(2, 1)], 3, 2, "u", None, None)
    assert rolling["conditions"][0]["reason"] == "RollingOut"
    stale = derive_serving([deployment(2, 2, generation=2, observed=1)], 3, 2, "u", None, None)
    assert stale["conditions"][0]["status"] == "False"
    problem = derive_serving([deployment(2, 2)], 3, 2, "u", None, None, ("ModelNotResolved", "x"))
    assert problem["conditions"][0]["reason"] == "ModelNotResolved"


def test_a_problem_keeps_the_observed_generation() -> None:
    """Children of generation 2 not applied (model unresolved): status still speaks for generation 1."""
    before = ModelDeploymentStatus(observed_generation=1)
    problem = ("ModelNotResolved", "x")
    status = derive_serving_status(before, [deployment(2, 2)], 2, 2, "u", None, None, problem)
    assert status.observed_generation == 1 and status.conditions[0].observed_generation == 2
    assert derive_serving_status(before, [deployment(2, 2)], 2, 2, "u", None, None).observed_generation == 2


def drift_summary(drifted: bool) -> DriftSummary:
    features = [
        FeatureResult(name="age", test="psi", score=0.4 if drifted else 0.01, threshold=0.2, drifted=drifted)
    ]
    return DriftSummary(
        drift_share=1.0 if drifted else 0.0,
        dataset_drift=drifted,
        features=features,
        rows_reference=100,
        rows_current=50,
        report_uri="s3://r/report.html",
    )


def test_drift_check_is_applied_once() -> None:
    check = job([{"type": "Complete", "status": "True"}], completionTime="2026-01-01T01:00:00Z")
    once = apply_check(DRIFT, check, drift_summary(True), 1)
    assert once.checks_succeeded == 1 and once.drift_share == 1.0 and once.dataset_drift is True
    assert once.features[0].name == "age"
    assert next(c for c in once.conditions if c.type == "DriftDetected").status == "True"
    assert apply_check(once, check, drift_summary(True), 1) == once


def test_an_older_check_seen_late_is_ignored() -> None:
    newer = job([{"type": "Complete", "status": "True"}], completionTime="2026-01-01T02:00:00Z")
    older = job([{"type": "Complete", "status": "True"}], completionTime="2026-01-01T01:00:00Z")
    older["metadata"]["name"] = "older"
    status = apply_check(DRIFT, newer, drift_summary(True), 1)
    assert apply_check(status, older, drift_summary(False), 1) == status


def test_failed_check_counts_and_keeps_last_verdict() -> None:
    before = apply_check(DRIFT, job([{"type": "Complete", "status": "True"}]), drift_summary(False), 1)
    failed = job([{"type": "Failed", "status": "True"}])
    failed["metadata"]["name"] = "j2"
    after = apply_check(before, failed, None, 1)
    assert after.checks_failed == 1 and after.drift_share == 0.0


def test_a_check_whose_pod_said_nothing_fails_with_the_job_controllers_reason() -> None:
    deadline = "Job was active longer than specified deadline"
    failed = job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": deadline}])
    after = apply_check(DRIFT, failed, None, 1)
    condition = next(c for c in after.conditions if c.type == "DriftDetected")
    assert condition.reason == "CheckFailed" and condition.status == "Unknown"
    assert condition.message.endswith(f"failed: DeadlineExceeded: {deadline}")
    said = apply_check(DRIFT, failed, None, 1, failure="reference data not found")
    assert next(c for c in said.conditions if c.type == "DriftDetected").message.endswith(
        "failed: reference data not found"
    )


def test_retrain_cooldown() -> None:
    drifted = DriftMonitorStatus(dataset_drift=True)
    assert should_retrain(drifted, T1, 3600)
    triggered = drifted.model_copy(update={"last_triggered_time": T1})
    assert not should_retrain(triggered, T1 + timedelta(seconds=100), 3600)
    assert should_retrain(triggered, T2, 3600)
    assert not should_retrain(DriftMonitorStatus(dataset_drift=False), T2, 3600)


def test_summary_fits_a_termination_message() -> None:
    features = [
        FeatureResult(name=f"feature_{i:03d}", test="psi", score=i / 100, threshold=0.2, drifted=i % 2 == 0)
        for i in range(200)
    ]
    summary = DriftSummary(
        drift_share=0.5, dataset_drift=True, features=features, rows_reference=1, rows_current=1
    )
    text = encode(summary)
    assert len(text.encode()) <= 4096
    decoded = decode(text)
    assert isinstance(decoded, DriftSummary) and decoded.dataset_drift and decoded.features[0].drifted
    assert decode("not json") is None and decode('{"kind": "Other"}') is None
