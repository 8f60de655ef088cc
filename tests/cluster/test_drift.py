"""DriftMonitor -> CronJob; a finished check becomes status, metrics and exactly one retrain per episode."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.drift import FeatureResult
from kubeloop.api.summaries import DriftSummary, encode
from tests.cluster.manifests import drift_monitor, model_deployment
from tests.cluster.test_training import exit_pod
from tests.fixtures.cluster import Kubectl, OperatorProcess, wait_for

pytestmark = pytest.mark.cluster

TEMPLATE = {
    "spec": {
        "dataset": {"uri": "s3://data/latest.parquet"},
        "register": {"modelName": "churn", "alias": "challenger"},
    }
}


def drifted_summary() -> str:
    features = [
        FeatureResult(name="age", test="psi", score=0.41, threshold=0.2, drifted=True),
        FeatureResult(name="plan", test="jensenshannon", score=0.02, threshold=0.1, drifted=False),
    ]
    summary = DriftSummary(
        drift_share=0.5,
        dataset_drift=True,
        features=features,
        rows_reference=1000,
        rows_current=400,
        report_uri="s3://payloads/_reports/x/report.html",
    )
    return encode(summary)


def run_check(kubectl: Kubectl, namespace: str, job: str, message: str, code: int = 0) -> None:
    """What the CronJob controller does on schedule, done now: a Job from the CronJob's template."""
    kubectl.run("create", "job", job, "--from=cronjob/watch-check", "-n", namespace)
    exit_pod(kubectl, namespace, job, code, message)


def status_of(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return (kubectl.get("driftmonitor", "watch", namespace) or {}).get("status") or {}


def test_drift_status_metrics_and_one_retrain_per_cooldown(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("serve"), namespace)
    kubectl.apply(
        drift_monitor(action={"type": "Retrain", "cooldownSeconds": 3600, "trainingJobTemplate": TEMPLATE}),
        namespace,
    )
    cronjob = wait_for(lambda: kubectl.get("cronjob", "watch-check", namespace), 60, what="the CronJob")
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert (
        args[args.index("--payload-log") + 1] == "s3://payloads"
        and args[args.index("--model") + 1] == "serve"
    )

    run_check(kubectl, namespace, "check-1", drifted_summary())
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("lastCheckJob") == "check-1" and s,
        60,
        what="check applied",
    )
    assert status["driftShare"] == 0.5 and status["datasetDrift"] is True
    assert [f["name"] for f in status["features"] if f["drifted"]] == ["age"]
    assert status["reportUri"].endswith("report.html")
    assert next(c for c in status["conditions"] if c["type"] == "DriftDetected")["status"] == "True"
    retrain = status["lastTriggeredTrainingJob"]
    created = wait_for(
        lambda: kubectl.get("trainingjob", retrain, namespace), 30, what="the retrain TrainingJob"
    )
    assert created["spec"]["dataset"]["uri"] == "s3://data/latest.parquet"
    assert created["metadata"]["ownerReferences"][0]["kind"] == "DriftMonitor"

    labels = {"namespace": namespace, "monitor": "watch"}
    assert wait_for(
        lambda: operator.metric("kubeloop_drift_share", **labels) == 0.5, 10, what="drift share metric"
    )
    assert operator.metric("kubeloop_drift_detected", **labels) == 1.0
    assert operator.metric("kubeloop_drift_score", **labels, feature="age", test="psi") == 0.41
    assert operator.metric("kubeloop_drift_retrains_total", **labels) == 1.0

    run_check(kubectl, namespace, "check-2", drifted_summary())
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("lastCheckJob") == "check-2" and s,
        60,
        what="second check",
    )
    assert status["checksSucceeded"] == 2
    assert status["lastTriggeredTrainingJob"] == retrain, "inside the cooldown: no second retrain"
    assert len(kubectl.items("trainingjobs", namespace)) == 1

    kubectl.run("delete", "driftmonitor", "watch", "-n", namespace)
    assert wait_for(
        lambda: operator.metric("kubeloop_drift_share", **labels) is None, 30, what="series removed"
    )
    for name in ("kubeloop_drift_score", "kubeloop_drift_feature_drifted", "kubeloop_drift_retrains_total"):
        assert operator.metric(name, **labels) is None, f"{name} outlived its DriftMonitor"


def test_failed_check_is_counted(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("serve"), namespace)
    kubectl.apply(drift_monitor(), namespace)
    wait_for(lambda: kubectl.get("cronjob", "watch-check", namespace), 60, what="the CronJob")
    run_check(kubectl, namespace, "check-bad", "drift check failed: window is empty", code=4)
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace)).get("checksFailed") == 1 and s,
        60,
        what="failed check counted",
    )
    condition = next(c for c in status["conditions"] if c["type"] == "DriftDetected")
    assert condition["reason"] == "CheckFailed" and "window is empty" in condition["message"]
    assert kubectl.items("trainingjobs", namespace) == []


def test_monitor_waits_for_its_target(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(drift_monitor(target="later"), namespace)

    def ready_reason() -> str | None:
        conditions = status_of(kubectl, namespace).get("conditions") or []
        return next((c["reason"] for c in conditions if c["type"] == "Ready"), None)

    assert wait_for(lambda: ready_reason() == "TargetNotFound", 30, what="TargetNotFound")
    kubectl.apply(model_deployment("later"), namespace)
    assert wait_for(lambda: ready_reason() == "Scheduled", 60, what="Ready once the target exists")
