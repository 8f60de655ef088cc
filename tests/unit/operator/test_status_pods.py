"""Why pods do not run, in the TrainingJob's and the ModelDeployment's condition: the scheduler's and
the kubelet's status of a pod in, (reason, message) out. The pod statuses are as the kubelet and the
scheduler write them (tests/e2e/test_stuck_pods.py meets each on the real node)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment_status import ModelDeploymentStatus
from kubeloop.api.training import TrainingJobStatus
from kubeloop_operator.status.pods import MAX_MESSAGE, pod_problem
from kubeloop_operator.status.serving import derive_serving_status
from kubeloop_operator.status.training import derive_training_status

pytestmark = pytest.mark.unit

UNSCHEDULABLE: dict[str, Any] = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
            "available: 1 No preemption victims found for incoming pod.",
        }
    ],
}


def waiting(reason: str, message: str, name: str = "trainer", **extra: Any) -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return {"phase": "Pending", "containerStatuses": [{"name": name, "state": state, **extra}]}


def pod(status: dict[str, Any], name: str = "p", created: str = "2026-12-05T01:00:00Z", **meta: Any) -> Any:
    return {"metadata": {"name": name, "creationTimestamp": created, **meta}, "status": status}


CRASHED = waiting(
    "CrashLoopBackOff",
    "back-off 10s restarting failed container=server pod=bad-model-6d9f_ns(0e1c)",
    name="server",
    lastState={
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "message": "ModelLoadError: cannot fetch model from s3://kubeloop/models/absent/model.onnx\n",
        }
    },
    restartCount=2,
)


@pytest.mark.parametrize(
    ("status", "reason", "said"),
    [
        (
            UNSCHEDULABLE,
            "Unschedulable",
            "pod p: cannot be scheduled: 0/1 nodes are available: 1 Insufficient",
        ),
        (
            waiting("CreateContainerConfigError", 'secret "git" not found'),
            "CreateContainerConfigError",
            'pod p: container trainer is waiting (CreateContainerConfigError): secret "git" not found',
        ),
        (
            waiting("ImagePullBackOff", 'Back-off pulling image "localhost/kubeloop/absent:v1"'),
            "ImagePullBackOff",
            'Back-off pulling image "localhost/kubeloop/absent:v1"',
        ),
        (
            CRASHED,
            "CrashLoopBackOff",
            "; it last ended with exit code 1, Error: ModelLoadError: cannot fetch model from s3://kubeloop/",
        ),
    ],
)
def test_a_stuck_pod_is_named_with_the_reason_and_message_it_has(
    status: dict[str, Any], reason: str, said: str
) -> None:
    problem = pod_problem([pod(status)])
    assert problem is not None and problem[0] == reason
    assert said in problem[1]


def test_pods_on_their_way_and_pods_going_away_are_not_stuck() -> None:
    creating = waiting("ContainerCreating", "")
    initializing = {"phase": "Pending", "initContainerStatuses": [{"name": "init", "state": creating}]}
    running = {"phase": "Running", "containerStatuses": [{"name": "server", "state": {"running": {}}}]}
    assert pod_problem([]) is None
    assert pod_problem([pod(creating), pod(initializing), pod(running)]) is None
    assert pod_problem([pod(UNSCHEDULABLE, deletionTimestamp="2026-12-05T01:00:05Z")]) is None
    scheduled = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    assert pod_problem([pod(scheduled)]) is None


def test_the_newest_stuck_pod_speaks_and_an_init_container_counts() -> None:
    old = pod(UNSCHEDULABLE, "old", "2026-12-05T01:00:00Z")
    new = pod(waiting("ErrImagePull", "pull failed"), "new", "2026-12-05T01:05:00Z")
    assert pod_problem([old, new]) == (
        "ErrImagePull",
        "pod new: container trainer is waiting (ErrImagePull): pull failed",
    )
    init = {"phase": "Pending", "initContainerStatuses": CRASHED["containerStatuses"]}
    assert pod_problem([pod(init)]) is not None


def test_a_long_message_is_cut_keeping_a_crash_logs_last_lines_and_an_odd_reason_is_replaced() -> None:
    log = "x" * 5000 + " the last line"
    crashed = waiting(
        "CrashLoopBackOff", "back-off", lastState={"terminated": {"exitCode": 1, "message": log}}
    )
    problem = pod_problem([pod(crashed)])
    assert problem is not None and len(problem[1]) <= MAX_MESSAGE and problem[1].endswith("the last line")
    condition = UNSCHEDULABLE["conditions"][0]
    crowded = {**UNSCHEDULABLE, "conditions": [{**condition, "message": "0/5000 nodes: " + "y" * 5000}]}
    problem = pod_problem([pod(crowded)])
    assert problem is not None and len(problem[1]) == MAX_MESSAGE and problem[1].endswith("y...")
    odd = pod_problem([pod(waiting("not a reason!", "m"))])
    assert odd is not None and odd[0] == "PodNotRunning"


def test_a_pending_training_job_says_why_its_pod_does_not_run() -> None:
    job = {"metadata": {"name": "j"}, "status": {"active": 1}}
    status = derive_training_status(TrainingJobStatus(), job, [pod(UNSCHEDULABLE)], 1, False, "http://m")
    (condition,) = [c for c in status.conditions if c.type == "Succeeded"]
    assert (status.phase, condition.reason) == ("Pending", "Unschedulable")
    assert condition.message.startswith("training is pending; pod p: cannot be scheduled")
    fine = derive_training_status(
        TrainingJobStatus(), job, [pod(waiting("ContainerCreating", ""))], 1, False, ""
    )
    assert [c.reason for c in fine.conditions] == ["Pending"]


def test_a_rolling_out_model_deployment_says_why_a_server_does_not_run() -> None:
    rolling = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1}}
    stuck = pod_problem([pod(CRASHED)])
    status = derive_serving_status(ModelDeploymentStatus(), [rolling], 1, 1, "u", None, None, None, stuck)
    (condition,) = status.conditions
    assert (condition.status, condition.reason) == ("False", "CrashLoopBackOff")
    assert condition.message.startswith("0/1 replicas ready; pod p: container server is waiting")
    ready = {**rolling, "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1,
                                   "readyReplicas": 1}}  # fmt: skip
    available = derive_serving_status(ModelDeploymentStatus(), [ready], 1, 1, "u", None, None, None, stuck)
    assert available.conditions[0].reason == "Available"  # a stuck surge pod does not unready a served model
