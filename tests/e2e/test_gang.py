"""Gang semantics on real pods: a distributed TrainingJob whose worker is killed mid-training
restarts all its ranks (a fresh gang, resumed from the last epoch checkpoint in MLflow) and
succeeds; with restartLimit 0 it fails, naming the rank and the reason.
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
# Enough epochs that the kill lands mid-training; no early stopping, so every epoch runs.
DDP = {
    "workers": 2,
    "builtin": {"algorithm": "mlp", "earlyStoppingPatience": 0},
    "hyperparameters": {"epochs": 60, "batch_size": 256},
}


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = churn_loop(platform, e2e_namespace)
    return run


def rank_pod(platform: Platform, loop: Loop, job: str, rank: int) -> dict[str, Any] | None:
    selector = f"job-name={job},batch.kubernetes.io/job-completion-index={rank}"
    pods = [
        p
        for p in platform.kubectl.items("pods", loop.namespace, selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    return pods[0] if pods else None


def kill_rank_1_mid_training(platform: Platform, loop: Loop, job: str) -> str:
    """Once rank 0 is past epoch 2 (so a checkpoint exists), rank 1's pod is force-deleted."""
    wait_for(
        lambda: (
            "epoch 3/"
            in platform.logs(f"job-name={job},batch.kubernetes.io/job-completion-index=0", loop.namespace)
        ),
        600,
        interval=2,
        what=f"{job}: rank 0 training epoch 3",
    )
    pod = rank_pod(platform, loop, job, 1)
    assert pod is not None, "rank 1 is running"
    name: str = pod["metadata"]["name"]
    platform.kubectl.run("delete", "pod", name, "-n", loop.namespace, "--grace-period=0", "--force")
    return name


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status.get("conditions") or [] if c["type"] == type_)
    return found


def test_a_killed_worker_restarts_the_whole_gang_which_resumes_and_succeeds(
    platform: Platform, loop: Loop
) -> None:
    platform.apply(loop.training_job("churn-gang", **DDP), loop.namespace)
    first_rank_0 = wait_for(
        lambda: rank_pod(platform, loop, "churn-gang", 0), 300, interval=2, what="rank 0 pod"
    )
    killed = kill_rank_1_mid_training(platform, loop, "churn-gang")
    restarting = platform.wait_status(
        "trainingjob", "churn-gang", loop.namespace, lambda s: s.get("restarts") == 1, 300, "restarts = 1"
    )["status"]
    done = platform.wait_status(
        "trainingjob", "churn-gang", loop.namespace, succeeded, 900, "churn-gang Succeeded"
    )
    status = done["status"]
    assert status["restarts"] == 1
    job = platform.kubectl.get("job", "churn-gang", loop.namespace)
    assert job is not None and job["metadata"]["annotations"]["kubeloop.io/gang-attempt"] == "1"
    assert job["status"].get("succeeded") == 2, "both ranks of the new gang finished"
    pods = platform.kubectl.items("pods", loop.namespace, "job-name=churn-gang")
    names = {p["metadata"]["name"] for p in pods}
    assert killed not in names and first_rank_0["metadata"]["name"] not in names, "every rank started again"
    events = platform.kubectl.run(
        "get", "events", "-n", loop.namespace, "--field-selector", "reason=GangRestart", "-o", "json"
    )
    messages = [e["message"] for e in json.loads(events.stdout)["items"]]
    assert len(messages) == 1 and "rank 1 failed" in messages[0], messages
    run = platform.mlflow("runs/get", run_id=status["mlflowRunId"])["run"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert int(params["resumed_from_epoch"]) >= 1, "the new gang resumed from the last checkpoint"
    assert params["model.epochs_run"] == "60"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "killed": killed,
        "restart_message": messages[0],
        "restarting_condition": condition(restarting, "Succeeded"),
        "resumed_from_epoch": params["resumed_from_epoch"],
        "run": status["mlflowRunId"],
    }
    (RESULTS / "gang.json").write_text(json.dumps(result, indent=2))
    print(f"\ngang: {json.dumps(result)}")


def test_with_restart_limit_0_a_killed_worker_fails_the_job_naming_its_rank(
    platform: Platform, loop: Loop
) -> None:
    tj = loop.training_job("churn-gang-once", **DDP, runPolicy={"restartLimit": 0})
    platform.apply(tj, loop.namespace)
    kill_rank_1_mid_training(platform, loop, "churn-gang-once")
    done = platform.wait_status(
        "trainingjob", "churn-gang-once", loop.namespace, lambda s: s.get("phase") == "Failed", 600, "Failed"
    )
    status = done["status"]
    assert status["restarts"] == 0
    failed = condition(status, "Succeeded")
    assert failed["status"] == "False" and failed["reason"] not in ("", "Failed", "PodFailurePolicy")
    assert failed["message"].startswith("rank 1 failed: "), failed
    assert "restart limit 0 reached" in failed["message"]
    job = platform.kubectl.get("job", "churn-gang-once", loop.namespace)
    assert job is not None and job["metadata"]["annotations"]["kubeloop.io/gang-attempt"] == "0", (
        "never restarted"
    )
    survivors = [
        p
        for p in platform.kubectl.items("pods", loop.namespace, "job-name=churn-gang-once")
        if p["status"].get("phase") not in ("Failed", "Succeeded")
    ]
    assert survivors == [], "rank 0 was stopped, not left hanging in its collectives"
