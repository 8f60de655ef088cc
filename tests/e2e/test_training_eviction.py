"""A single-worker TrainingJob whose pod is evicted mid-training, on real pods: the Job controller
replaces the pod without spending a retry (backoffLimit stays 0), the new pod resumes from the
evicted run's last epoch checkpoint in MLflow, and the TrainingJob succeeds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.loop import Loop, churn_loop, succeeded
from tests.e2e.platform import ROOT, Platform
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
RESULTS = ROOT / ".run/e2e"
JOB = "churn-evicted"
# Enough epochs of enough steps (250 each) that the eviction lands mid-training; no early stopping,
# so every epoch runs.
SINGLE = {
    "builtin": {"algorithm": "mlp", "earlyStoppingPatience": 0},
    "hyperparameters": {"epochs": 60, "batch_size": 16},
}


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = churn_loop(platform, e2e_namespace)
    return run


def pods(platform: Platform, loop: Loop) -> list[dict[str, Any]]:
    return sorted(
        platform.kubectl.items("pods", loop.namespace, f"job-name={JOB}"),
        key=lambda pod: pod["metadata"]["creationTimestamp"],
    )


def evict(platform: Platform, namespace: str, name: str) -> None:
    """What a node drain or a preemption does to the pod: the Eviction API."""
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/eviction"
    platform.kubectl.run("create", "--raw", path, "-f", "-", stdin=json.dumps(eviction))


def test_an_evicted_training_pod_is_replaced_and_the_new_pod_resumes(platform: Platform, loop: Loop) -> None:
    platform.apply(loop.training_job(JOB, **SINGLE), loop.namespace)
    wait_for(
        lambda: "epoch 3/" in platform.logs(f"job-name={JOB}", loop.namespace),
        600,
        interval=2,
        what=f"{JOB}: training epoch 3",
    )
    (first,) = pods(platform, loop)
    evicted = first["metadata"]["name"]
    evict(platform, loop.namespace, evicted)
    # the API server marks the pod before deleting it; it stops at its next epoch boundary
    marked = platform.kubectl.get("pod", evicted, loop.namespace)
    conditions = (marked or {}).get("status", {}).get("conditions") or []
    disruption = next((c for c in conditions if c["type"] == "DisruptionTarget"), None)

    done = platform.wait_status("trainingjob", JOB, loop.namespace, succeeded, 900, f"{JOB} Succeeded")
    status = done["status"]
    job = platform.kubectl.get("job", JOB, loop.namespace)
    assert job is not None and job["spec"]["backoffLimit"] == 0, "no retries allowed"
    assert not job["status"].get("failed"), "the evicted pod did not count as a failure"
    (new,) = pods(platform, loop)  # an evicted pod is deleted
    assert new["metadata"]["name"] != evicted and new["status"]["phase"] == "Succeeded"
    run = platform.mlflow("runs/get", run_id=status["mlflowRunId"])["run"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    # the evicted pod checkpoints the epoch it is in when SIGTERM comes, after epoch 3 at the least
    assert 3 <= int(params["resumed_from_epoch"]) < 60, "the new pod resumed mid-training"
    assert params["model.epochs_run"] == "60"
    source = tags["kubeloop.io/resumed-from-run"]
    assert source != status["mlflowRunId"]
    evicted_run = platform.mlflow("runs/get", run_id=source)["run"]
    assert evicted_run["info"]["status"] == "FAILED", "the evicted pod ended its run on SIGTERM"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "evicted": evicted,
        "disruption": disruption,
        "replacement": new["metadata"]["name"],
        "resumed_from_epoch": params["resumed_from_epoch"],
        "evicted_run": source,
        "run": status["mlflowRunId"],
    }
    (RESULTS / "training-eviction.json").write_text(json.dumps(result, indent=2))
    print(f"\ntraining eviction: {json.dumps(result)}")
