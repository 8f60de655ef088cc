"""Status derivation is pure: observed children in, status out."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.drift import FeatureResult
from kubeloop.api.summaries import DriftSummary, TrainingSummary, decode, encode
from kubeloop.api.training import RegisteredModel
from kubeloop_operator.conditions import observed_generation, set_condition
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


def test_condition_transition_time_moves_only_on_change() -> None:
    first = set_condition([], "Ready", True, "Available", "ok", 1, timestamp="t1")
    same = set_condition(first, "Ready", True, "Available", "still ok", 2, timestamp="t2")
    flipped = set_condition(same, "Ready", False, "RollingOut", "x", 3, timestamp="t3")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "t3" and flipped[0]["status"] == "False"


def test_training_phases() -> None:
    assert derive_training_status({}, None, [], 1, False, "http://m")["phase"] == "Pending"
    assert derive_training_status({}, job(active=1), [], 1, False, "http://m")["phase"] == "Pending"
    running = [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}]
    assert derive_training_status({}, job(active=1), running, 1, False, "http://m")["phase"] == "Running"
    assert derive_training_status({}, job(), [], 1, True, "http://m")["phase"] == "Suspended"


def test_training_success_reads_the_summary() -> None:
    summary = TrainingSummary(
        mlflow_run_id="abc",
        metrics={"val_f1": 0.91},
        registered_model=RegisteredModel(name="churn", version="4"),
    )
    done = job([{"type": "Complete", "status": "True"}], startTime="s", completionTime="c")
    status = derive_training_status({}, done, [terminated_pod(encode(summary))], 2, False, "http://mlflow")
    assert status["phase"] == "Succeeded"
    assert status["mlflowRunId"] == "abc"
    assert status["mlflowRunUrl"] == "http://mlflow/#/runs/abc"
    assert status["metrics"] == {"val_f1": 0.91}
    assert status["registeredModel"] == {"name": "churn", "version": "4"}
    assert status["observedGeneration"] == 2
    succeeded = status["conditions"][0]
    assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed")


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
    status = derive_training_status({}, failed, pods, 1, False, "http://m")
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
    ready = derive_serving_status({}, [deployment(2, 2)], 3, 2, "u", None, None)
    assert ready["conditions"][0]["status"] == "True" and ready["readyReplicas"] == 2
    rolling = derive_serving_status({}, [deployment(2, 1)], 3, 2, "u", None, None)
    assert rolling["conditions"][0]["reason"] == "RollingOut"
    stale = derive_serving_status({}, [deployment(2, 2, generation=2, observed=1)], 3, 2, "u", None, None)
    assert stale["conditions"][0]["status"] == "False"
    problem = derive_serving_status({}, [deployment(2, 2)], 3, 2, "u", None, None, ("ModelNotResolved", "x"))
    assert problem["conditions"][0]["reason"] == "ModelNotResolved"


def test_only_a_reconcile_advances_the_observed_generation() -> None:
    assert observed_generation({"observedGeneration": 1}, 2, reconciled=True) == 2
    assert observed_generation({"observedGeneration": 1}, 2, reconciled=False) == 1  # old children's event
    assert observed_generation({}, 1, reconciled=False) == 0


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
    once = apply_check({}, check, drift_summary(True), 1)
    assert once["checksSucceeded"] == 1 and once["driftShare"] == 1.0 and once["datasetDrift"] is True
    assert once["features"][0]["name"] == "age"
    assert next(c for c in once["conditions"] if c["type"] == "DriftDetected")["status"] == "True"
    assert apply_check(once, check, drift_summary(True), 1) == once


def test_an_older_check_seen_late_is_ignored() -> None:
    newer = job([{"type": "Complete", "status": "True"}], completionTime="2026-01-01T02:00:00Z")
    older = job([{"type": "Complete", "status": "True"}], completionTime="2026-01-01T01:00:00Z")
    older["metadata"]["name"] = "older"
    status = apply_check({}, newer, drift_summary(True), 1)
    assert apply_check(status, older, drift_summary(False), 1) == status


def test_failed_check_counts_and_keeps_last_verdict() -> None:
    before = apply_check({}, job([{"type": "Complete", "status": "True"}]), drift_summary(False), 1)
    failed = job([{"type": "Failed", "status": "True"}])
    failed["metadata"]["name"] = "j2"
    after = apply_check(before, failed, None, 1)
    assert after["checksFailed"] == 1 and after["driftShare"] == 0.0


def test_retrain_cooldown() -> None:
    assert should_retrain({"datasetDrift": True}, 1000.0, None, 3600)
    assert not should_retrain({"datasetDrift": True}, 1000.0, 900.0, 3600)
    assert should_retrain({"datasetDrift": True}, 5000.0, 900.0, 3600)
    assert not should_retrain({"datasetDrift": False}, 5000.0, None, 3600)


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
