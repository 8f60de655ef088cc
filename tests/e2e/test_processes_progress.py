"""Several processes per worker pod and progress in status, on real pods: 2 pods x 2 processes
(torchrun in each pod, gloo on CPU) train and register; a longer run shows its progress in
`kubectl get tj` while it runs, and 100 % once it ends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.loop import Loop, churn_loop, succeeded
from tests.e2e.platform import ROOT, Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
RESULTS = ROOT / ".run/e2e"


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = churn_loop(platform, e2e_namespace)
    return run


def test_two_pods_of_two_processes_train_as_four_ranks(platform: Platform, loop: Loop) -> None:
    tj = loop.training_job(
        "churn-p2",
        workers=2,
        processesPerWorker=2,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 2, "batchSize": 256},
        register={"modelName": f"{loop.model}-p2"},
    )
    platform.apply(tj, loop.namespace)
    done = platform.wait_status(
        "trainingjob", "churn-p2", loop.namespace, succeeded, 900, "churn-p2 Succeeded"
    )
    status = done["status"]
    assert status["registeredModel"]["version"] == "1", "global rank 0 registered, once"
    assert status["progress"]["percent"] == 100.0
    pods = platform.kubectl.items("pods", loop.namespace, "job-name=churn-p2")
    assert len(pods) == 2
    container = pods[0]["spec"]["containers"][0]
    assert container["command"][:4] == ["python", "-m", "torch.distributed.run", "--no-python"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["PET_NNODES"], env["PET_NPROC_PER_NODE"]) == ("2", "2")
    run = platform.mlflow("runs/get", run_id=status["mlflowRunId"])["run"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["workers"] == "2"


def test_progress_column_while_a_job_runs(platform: Platform, loop: Loop) -> None:
    tj = loop.training_job(
        "churn-long",
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        # long enough (~0.2 s an epoch here) for the operator's 12 s progress poll to see it midway
        hyperparameters={"epochs": 500, "batchSize": 16},
        resources={"cpu": "1"},  # of the node's 2: torch's threads follow the limit
    )
    platform.apply(tj, loop.namespace)

    def midway(status: dict[str, Any]) -> bool:
        assert status.get("phase") != "Failed", status.get("conditions")
        percent = (status.get("progress") or {}).get("percent")
        return percent is not None and 0 < percent < 100

    running = platform.wait_status("trainingjob", "churn-long", loop.namespace, midway, 900, "progress shown")
    progress = running["status"]["progress"]
    assert running["status"]["phase"] == "Running"
    assert progress["totalEpochs"] == 500 and progress["epoch"] >= 1 and progress["etaSeconds"] >= 0
    table = platform.kubectl.run("get", "tj", "churn-long", "-n", loop.namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "PHASE", "REASON", "PROGRESS", "EPOCH", "ETA-SECONDS"]
    assert row.split()[2] == "Running" and row.split()[3] not in ("", "<none>")
    done = platform.wait_status(
        "trainingjob", "churn-long", loop.namespace, succeeded, 1200, "churn-long done"
    )
    assert done["status"]["progress"]["percent"] == 100.0
    assert done["status"]["progress"]["epoch"] == 500
    run = platform.mlflow("runs/get", run_id=done["status"]["mlflowRunId"])["run"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["torch.threads"] == "1", "OMP_NUM_THREADS from the pod's CPU limit, not the node's 2"
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"while_running": progress, "columns": row, "final": done["status"]["progress"]}
    (RESULTS / "progress.json").write_text(json.dumps(record, indent=2))
