"""TrainingJob -> Job on the real API server; status from what the (simulated) kubelet reports."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.challenge import ChallengeResult
from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop.api.training import RegisteredModel
from tests.cluster.manifests import training_job
from tests.fixtures.cluster import Kubectl, OperatorProcess, wait_for

pytestmark = pytest.mark.cluster


def exit_pod(
    kubectl: Kubectl, namespace: str, job: str, code: int, message: str = "", index: str = "0"
) -> None:
    """Act as the workload: make the running pod exit with `code`, leaving `message` as its summary."""

    def running_pod() -> str | None:
        for pod in kubectl.items("pods", namespace, f"job-name={job}"):
            annotations = pod["metadata"].get("annotations", {})
            if (
                pod["status"].get("phase") == "Running"
                and annotations.get("batch.kubernetes.io/job-completion-index", "0") == index
            ):
                return str(pod["metadata"]["name"])
        return None

    pod = wait_for(running_pod, 60, what=f"a running pod of job {job}")
    kubectl.run(
        "annotate",
        "pod",
        pod,
        "-n",
        namespace,
        f"kubeloop.io/simulate-exit-code={code}",
        f"kubeloop.io/simulate-termination-message={message}",
    )


def status_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    obj = kubectl.get("trainingjob", name, namespace)
    return (obj or {}).get("status") or {}


def test_job_with_gpus_then_success_summary_in_status(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(training_job("churn", resources={"gpus": 1, "cpu": 2, "memory": "4Gi"}), namespace)
    job = wait_for(lambda: kubectl.get("job", "churn", namespace), 30, what="the Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    wait_for(
        lambda: status_of(kubectl, namespace, "churn").get("phase") == "Running", 30, what="phase Running"
    )
    scheduled = kubectl.items("pods", namespace, "job-name=churn")[0]
    assert scheduled["spec"]["nodeName"] == "kwok-gpu-0", (
        "the GPU pod lands on the GPU node (taint tolerated)"
    )

    summary = TrainingSummary(
        mlflow_run_id="0123abcd",
        metrics={"val_f1": 0.87, "val_roc_auc": 0.93},
        registered_model=RegisteredModel(name="churn", version="3"),
    )
    exit_pod(kubectl, namespace, "churn", 0, encode(summary))
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace, "churn")).get("phase") == "Succeeded" and s,
        60,
        what="Succeeded",
    )
    assert status["mlflowRunId"] == "0123abcd"
    assert status["metrics"] == {"val_f1": 0.87, "val_roc_auc": 0.93}
    assert status["registeredModel"] == {"name": "churn", "version": "3"}
    assert status["completionTime"] and status["observedGeneration"] == 1
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["status"] == "True" and "version 3" in condition["message"]
    events = kubectl.run(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=churn", "-o", "name"
    ).stdout
    assert events.strip(), "transitions are recorded as Kubernetes Events"


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (137, "", "OOMKilled"),
        (1, encode(TrainingSummary(failure_reason="BadData", message="column label missing")), "BadData"),
    ],
)
def test_failures_show_their_reason(
    operator: OperatorProcess, namespace: str, code: int, message: str, reason: str
) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(training_job("fails"), namespace)
    exit_pod(kubectl, namespace, "fails", code, message)
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace, "fails")).get("phase") == "Failed" and s,
        60,
        what="Failed",
    )
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (condition["status"], condition["reason"]) == ("False", reason)


def test_distributed_workers_get_indexed_job_and_rendezvous(
    operator: OperatorProcess, namespace: str
) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(training_job("ddp", workers=2, builtin={"algorithm": "mlp"}), namespace)
    job = wait_for(lambda: kubectl.get("job", "ddp", namespace), 30, what="the Job")
    service = wait_for(lambda: kubectl.get("service", "ddp", namespace), 30, what="the headless Service")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["parallelism"] == 2
    assert service["spec"]["clusterIP"] == "None"
    pods = kubectl.wait_count("pods", namespace, "job-name=ddp", 2, 30)
    assert sorted(p["spec"]["hostname"] for p in pods) == ["ddp-0", "ddp-1"]
    assert {p["spec"]["subdomain"] for p in pods} == {"ddp"}
    for index in ("0", "1"):
        exit_pod(
            kubectl,
            namespace,
            "ddp",
            0,
            encode(TrainingSummary(metrics={"loss": 0.1})) if index == "0" else "",
            index,
        )
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace, "ddp")).get("phase") == "Succeeded" and s,
        60,
        what="Succeeded",
    )
    assert status["metrics"] == {"loss": 0.1}


def test_suspended_run_policy(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(training_job("later", runPolicy={"suspend": True}), namespace)
    wait_for(lambda: status_of(kubectl, namespace, "later").get("phase") == "Suspended", 30, what="Suspended")
    assert kubectl.items("pods", namespace, "job-name=later") == []


def test_challenger_gate_verdict_in_status_and_kubectl_get(operator: OperatorProcess, namespace: str) -> None:
    """The trainer's verdict (here: champion not beaten) becomes status, a condition, an Event and
    the Gate column; the run itself succeeded."""
    kubectl = operator.cluster.kubectl
    gate = {
        "champion": "models:/churn@champion",
        "dataset": {"uri": "s3://data/holdout.parquet"},
        "metric": "f1",
    }
    kubectl.apply(training_job("gated", challenge=gate), namespace)

    def gate_condition() -> dict[str, Any] | None:
        conditions = status_of(kubectl, namespace, "gated").get("conditions") or []
        return next((c for c in conditions if c["type"] == "ChallengerGate"), None)

    waiting = wait_for(gate_condition, 30, what="the ChallengerGate condition")
    assert (waiting["status"], waiting["reason"]) == ("Unknown", "AwaitingEvaluation")
    verdict = ChallengeResult(
        outcome="NotBeaten",
        metric="f1",
        direction="maximize",
        champion="models:/churn@champion",
        champion_version="3",
        champion_score=0.82,
        challenger_score=0.74,
        rows=1000,
        message="champion not beaten: challenger f1 0.74 < champion models:/churn@champion (version 3) 0.82",
    )
    summary = TrainingSummary(
        mlflow_run_id="feed", registered_model=RegisteredModel(name="churn", version="4"), challenge=verdict
    )
    exit_pod(kubectl, namespace, "gated", 0, encode(summary))
    status = wait_for(
        lambda: (s := status_of(kubectl, namespace, "gated")).get("phase") == "Succeeded" and s,
        60,
        what="Succeeded",
    )
    assert status["challenge"] == verdict.wire()
    assert status["registeredModel"] == {"name": "churn", "version": "4"}
    lost = next(c for c in status["conditions"] if c["type"] == "ChallengerGate")
    assert (lost["status"], lost["reason"], lost["message"]) == (
        "False",
        "ChampionNotBeaten",
        verdict.message,
    )
    wide = kubectl.run("get", "tj", "gated", "-n", namespace, "-o", "wide", "--no-headers").stdout.split()
    assert wide[:8] == ["gated", "Succeeded", "Completed", "1", "0", "churn", "4", "NotBeaten"]
    assert wide[8:10] == ["0.74", "0.82"]
    events = kubectl.run(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=gated,reason=ChampionNotBeaten",
    ).stdout
    assert "champion not beaten" in events
