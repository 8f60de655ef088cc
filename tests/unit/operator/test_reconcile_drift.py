"""The DriftMonitor's reconcile against the in-memory API server: its CronJob once the target exists,
status from finished checks, one retrain per cooldown, and no lost write when a check finishes meanwhile."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from kubeloop.api.drift import FeatureResult
from kubeloop.api.summaries import DriftSummary, encode
from kubeloop_operator.kube import path
from kubeloop_operator.reconcile import reconcile_drift_monitor
from tests.unit.operator.world import MODEL, NS, World, condition, finish_job, sample

pytestmark = pytest.mark.unit


DRIFT = {
    "target": {"modelDeployment": "serve"},
    "reference": {"uri": "s3://data/ref.parquet"},
    "action": {
        "type": "Retrain",
        "cooldownSeconds": 3600,
        "trainingJobTemplate": {"spec": {"dataset": {"uri": "s3://data/new.parquet"}}},
    },
}
SERVED = {**MODEL, "payloadLogging": {"sinkUri": "s3://payloads"}}


def drift_summary() -> str:
    features = [FeatureResult(name="age", test="psi", score=0.4, threshold=0.2, drifted=True)]
    summary = DriftSummary(
        drift_share=1.0, dataset_drift=True, features=features, rows_reference=10, rows_current=5
    )
    return encode(summary)


def check_job(world: World, name: str, finished_at: str) -> None:
    labels = {"kubeloop.io/driftmonitor": "watch"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
    }
    world.api.put(path("Job", NS, name), job)
    finish_job(world, name, drift_summary())
    stored = world.get("Job", name)
    stored["status"]["completionTime"] = finished_at


def test_drift_monitor_waits_for_its_target(world: World) -> None:
    world.create("DriftMonitor", "watch", DRIFT)
    with pytest.raises(kopf.TemporaryError, match="does not exist"):
        reconcile_drift_monitor(world.ctx, NS, "watch")
    assert condition(world.status("DriftMonitor", "watch"), "Ready")["reason"] == "TargetNotFound"
    world.create("ModelDeployment", "serve", SERVED)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    status = world.status("DriftMonitor", "watch")
    assert condition(status, "Ready")["reason"] == "Scheduled" and status["observedGeneration"] == 1
    assert world.names("CronJob") == ["watch-check"]


def test_a_drifted_check_triggers_one_retrain_per_cooldown(world: World) -> None:
    world.create("ModelDeployment", "serve", SERVED)
    world.create("DriftMonitor", "watch", DRIFT)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    check_job(world, "watch-check-1", "2026-01-01T02:00:00Z")
    reconcile_drift_monitor(world.ctx, NS, "watch")
    status = world.status("DriftMonitor", "watch")
    assert status["lastCheckJob"] == "watch-check-1" and status["checksSucceeded"] == 1
    assert condition(status, "DriftDetected")["status"] == "True"
    retrain = world.get("TrainingJob", status["lastTriggeredTrainingJob"])
    assert retrain["spec"]["dataset"]["uri"] == "s3://data/new.parquet"
    assert retrain["metadata"]["ownerReferences"][0]["kind"] == "DriftMonitor"
    check_job(world, "watch-check-2", "2026-01-01T03:00:00Z")
    reconcile_drift_monitor(world.ctx, NS, "watch")
    reconcile_drift_monitor(world.ctx, NS, "watch")
    assert world.status("DriftMonitor", "watch")["checksSucceeded"] == 2
    assert len(world.names("TrainingJob")) == 1, "inside the cooldown: no second retrain"
    labels = {"namespace": NS, "monitor": "watch"}
    assert sample("kubeloop_drift_score", **labels, feature="age", test="psi") == 0.4
    assert sample("kubeloop_drift_retrains_total", **labels) == 1


def test_ready_does_not_roll_back_a_drift_detected_written_meanwhile(world: World) -> None:
    """The race of issue 10: a spec change's reconcile read the monitor, then a finished check
    wrote DriftDetected, then the reconcile wrote Ready. Its write must not undo the other."""
    world.create("ModelDeployment", "serve", SERVED)
    world.create("DriftMonitor", "watch", DRIFT)
    detected = {
        "type": "DriftDetected",
        "status": "True",
        "reason": "DatasetDrift",
        "message": "1/2 features drifted",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    written: list[bool] = []

    def check_finishes_meanwhile(method: str, url: str, _: Any) -> None:
        if url.endswith("/driftmonitors/watch/status") and not written:
            written.append(True)
            world.set_status("DriftMonitor", "watch", {"conditions": [detected], "lastCheckJob": "check-1"})

    world.api.before.append(check_finishes_meanwhile)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    status = world.status("DriftMonitor", "watch")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "DriftDetected": "True",
    }
    assert status["lastCheckJob"] == "check-1"


def test_a_check_whose_pod_cannot_run_makes_the_monitor_not_ready_until_it_ends(world: World) -> None:
    world.create("ModelDeployment", "serve", SERVED)
    world.create("DriftMonitor", "watch", DRIFT)
    metadata = {"name": "watch-check-1", "namespace": NS, "labels": {"kubeloop.io/driftmonitor": "watch"}}
    world.api.put(
        path("Job", NS, "watch-check-1"), {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata}
    )
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "absent:v1"'}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "watch-check-1-xyz", "namespace": NS, "labels": {"job-name": "watch-check-1"}},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "check", "state": waiting}]},
    }
    world.api.put(path("Pod", NS, "watch-check-1-xyz"), pod)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    ready = condition(world.status("DriftMonitor", "watch"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullBackOff")
    assert "a check cannot run: pod watch-check-1-xyz" in ready["message"] and "absent:v1" in ready["message"]
    finish_job(world, "watch-check-1", drift_summary())  # it ended (here: it ran after all)
    reconcile_drift_monitor(world.ctx, NS, "watch")
    ready = condition(world.status("DriftMonitor", "watch"), "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
