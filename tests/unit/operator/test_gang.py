"""Gang semantics of distributed TrainingJobs: the Job's podFailurePolicy, the pure restart
decision on Job and pod objects shaped like the API server's, and the reconcile carrying it out
against the in-memory API server (across operator restarts)."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from kubeloop.api.summaries import TrainingSummary, encode
from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus
from kubeloop_operator.context import Context
from kubeloop_operator.kube import Kube, path
from kubeloop_operator.reconcile import reconcile_training_job
from kubeloop_operator.render.training import ATTEMPT_ANNOTATION, render_training
from kubeloop_operator.settings import OperatorSettings
from kubeloop_operator.status.gang import decide, failed_worker, restarts_of
from tests.unit.operator.conftest import owner_of
from tests.unit.operator.world import NS, World, condition

pytestmark = pytest.mark.unit
Obj = dict[str, Any]
DDP = {
    "dataset": {"uri": "s3://data/train.parquet"},
    "workers": 2,
    "builtin": {"algorithm": "mlp"},
    "runPolicy": {"restartLimit": 2},
}


def job_api_problems(job: Obj) -> list[str]:
    """What the API server's Job validation says about a podFailurePolicy (batch/v1, 1.31)."""
    spec, problems = job["spec"], []
    policy, pod = spec.get("podFailurePolicy"), spec["template"]["spec"]
    if policy is None:
        return ["no podFailurePolicy"]
    if pod["restartPolicy"] != "Never":
        problems.append("podFailurePolicy needs restartPolicy Never")
    containers = {c["name"] for c in pod["containers"]}
    for index, rule in enumerate(policy["rules"]):
        if rule["action"] not in {"FailJob", "FailIndex", "Ignore", "Count"}:
            problems.append(f"rules[{index}].action")
        if ("onExitCodes" in rule) == ("onPodConditions" in rule):
            problems.append(f"rules[{index}]: exactly one of onExitCodes and onPodConditions")
        codes = rule.get("onExitCodes")
        if codes is not None:
            values = codes["values"]
            if codes["operator"] not in {"In", "NotIn"} or not values or len(values) > 255:
                problems.append(f"rules[{index}].onExitCodes")
            if values != sorted(set(values)) or (codes["operator"] == "In" and 0 in values):
                problems.append(f"rules[{index}].onExitCodes.values")
            if codes.get("containerName") not in (None, *containers):
                problems.append(f"rules[{index}].onExitCodes.containerName")
        for pod_condition in rule.get("onPodConditions") or []:
            if pod_condition.get("status", "True") not in {"True", "False", "Unknown"}:
                problems.append(f"rules[{index}].onPodConditions.status")
    if spec.get("completionMode") == "Indexed" and spec.get("backoffLimitPerIndex") is not None:
        problems.append("not with backoffLimitPerIndex")
    return problems


def test_a_distributed_job_fails_as_a_whole_when_any_worker_fails(settings: OperatorSettings) -> None:
    spec = TrainingJobSpec.model_validate(DDP)
    job = render_training(owner_of("TrainingJob", "ddp"), spec, settings, attempt=2)[0]
    assert job_api_problems(job) == []
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    exits = next(rule for rule in rules if "onExitCodes" in rule)
    assert exits["action"] == "FailJob"
    assert exits["onExitCodes"] == {"containerName": "trainer", "operator": "NotIn", "values": [0]}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["annotations"][ATTEMPT_ANNOTATION] == "2"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KUBELOOP_GANG_ATTEMPT", "value": "2"} in container["env"]


def test_a_single_worker_job_keeps_its_backoff_limit_and_replaces_a_disrupted_pod_free(
    settings: OperatorSettings,
) -> None:
    spec = TrainingJobSpec.model_validate({**DDP, "workers": 1, "runPolicy": {"backoffLimit": 2}})
    job = render_training(owner_of("TrainingJob"), spec, settings)[0]
    assert job_api_problems(job) == [] and job["spec"]["backoffLimit"] == 2
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ], "an evicted pod is replaced without spending a retry; every other failure counts"
    assert ATTEMPT_ANNOTATION not in job["metadata"]["annotations"]
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "KUBELOOP_GANG_ATTEMPT" not in env, "a single worker is not told which try it is"


def test_restart_limit_defaults_to_three_and_is_bounded() -> None:
    assert TrainingJobSpec.model_validate(DDP | {"runPolicy": {}}).run_policy.restart_limit == 3
    with pytest.raises(ValueError, match=r"restart_limit|restartLimit"):
        TrainingJobSpec.model_validate(DDP | {"runPolicy": {"restartLimit": -1}})


# Objects as the API server returns them for a 2-worker Job whose rank 1 was OOM-killed and
# whose rank 0 was then stopped by the Job controller (FailJob).

POLICY_MESSAGE = (
    "Container trainer for pod team-a/fit-1-x7k2p failed with exit code 137 matching FailJob rule at index 1"
)


def failed_job(attempt: int = 0, reason: str = "PodFailurePolicy", message: str = POLICY_MESSAGE) -> Obj:
    conditions = [
        {"type": "FailureTarget", "status": "True", "reason": reason, "message": message},
        {"type": "Failed", "status": "True", "reason": reason, "message": message},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fit", "namespace": NS, "annotations": {ATTEMPT_ANNOTATION: str(attempt)}},
        "spec": {"completionMode": "Indexed", "completions": 2, "parallelism": 2},
        "status": {"failed": 2, "startTime": "2026-01-01T01:00:00Z", "conditions": conditions},
    }


def worker_pod(
    rank: int, suffix: str, terminated: Obj | None, conditions: list[Obj] | None = None, **status: Any
) -> Obj:
    container: Obj = {"name": "trainer", "ready": False, "restartCount": 0}
    container["state"] = {"terminated": terminated} if terminated else {"running": {}}
    index = {"batch.kubernetes.io/job-completion-index": str(rank)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"fit-{rank}-{suffix}",
            "namespace": NS,
            "annotations": index,
            "labels": {"job-name": "fit", **index},
            "creationTimestamp": "2026-01-01T01:00:00Z",
        },
        "status": {
            "phase": "Failed" if terminated else "Running",
            "conditions": conditions or [{"type": "Ready", "status": "False"}],
            "containerStatuses": [container],
            **status,
        },
    }


def oom_killed_rank_1() -> list[Obj]:
    survivor = encode(TrainingSummary(failure_reason="Terminated", message="stopped by signal SIGTERM"))
    return [
        worker_pod(
            0, "a1b2c", {"exitCode": 1, "reason": "Error", "message": survivor, "finishedAt": "01:05:09Z"}
        ),
        worker_pod(1, "x7k2p", {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "01:05:03Z"}),
    ]


def test_the_rank_named_by_the_job_controller_failed_and_why() -> None:
    failure = failed_worker(failed_job(), oom_killed_rank_1())
    assert (failure.rank, failure.reason) == (1, "OOMKilled")
    assert failure.describe() == "rank 1 failed: OOMKilled (exit code 137)"


def test_the_trainers_own_reason_and_the_first_pod_to_fail() -> None:
    crashed = encode(TrainingSummary(failure_reason="BadData", message="no column label"))
    pods = [
        worker_pod(
            0, "a1b2c", {"exitCode": 1, "reason": "Error", "message": crashed, "finishedAt": "01:05:01Z"}
        ),
        worker_pod(1, "x7k2p", {"exitCode": 1, "reason": "Error", "finishedAt": "01:05:04Z"}),
    ]
    failure = failed_worker(failed_job(message="the Job failed"), pods)  # no pod named: the first to finish
    assert (failure.rank, failure.reason) == (0, "BadData")
    assert "no column label" in failure.describe()


def test_an_evicted_worker_is_a_disruption() -> None:
    evicted = [
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        }
    ]
    message = "Pod team-a/fit-0-a1b2c has condition DisruptionTarget matching FailJob rule at index 0"
    pods = [
        worker_pod(0, "a1b2c", {"exitCode": 143, "reason": "Error"}, evicted),
        worker_pod(1, "x7k2p", None),
    ]
    failure = failed_worker(failed_job(message=message), pods)
    assert (failure.rank, failure.reason) == (0, "EvictionByEvictionAPI")
    assert failure.describe().startswith("rank 0 failed: disrupted (EvictionByEvictionAPI)")
    kubelet = worker_pod(1, "x7k2p", None, phase="Failed", reason="Evicted", message="low on memory")
    assert failed_worker(failed_job(message="the Job failed"), [kubelet]).reason == "Evicted"


def test_a_force_deleted_worker_is_named_from_the_job_condition() -> None:
    failure = failed_worker(failed_job(), [])  # the pod is gone already
    assert (failure.rank, failure.reason) == (1, "Error")
    assert failure.describe() == "rank 1 failed: exit code 137"
    stopped = encode(TrainingSummary(failure_reason="Terminated", message="stopped by signal SIGTERM"))
    survivor = worker_pod(0, "a1b2c", {"exitCode": 1, "reason": "Error", "message": stopped})
    assert failed_worker(failed_job(), [survivor]).rank == 1, "the survivor the controller stopped is not it"


PEER_LOST = encode(
    TrainingSummary(
        failure_reason="Error",
        message="RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed "
        "by peer [10.244.0.17]:13028. This is typically caused by a remote worker crashing.",
    )
)


def test_a_worker_that_only_lost_its_peer_is_never_the_cause() -> None:
    """Rank 1's pod was deleted; rank 0's collective broke and it exited first, so the Job controller
    names rank 0. The cause is rank 1, whether its pod is still there or already gone."""
    lost = worker_pod(
        0, "a1b2c", {"exitCode": 1, "reason": "Error", "message": PEER_LOST, "finishedAt": "01:05:02Z"}
    )
    stopped = encode(TrainingSummary(failure_reason="Terminated", message="stopped by signal SIGTERM"))
    deleted = worker_pod(
        1, "x7k2p", {"exitCode": 1, "reason": "Error", "message": stopped, "finishedAt": "01:05:03Z"}
    )
    message = POLICY_MESSAGE.replace("fit-1-x7k2p", "fit-0-a1b2c").replace("code 137", "code 1")
    failure = failed_worker(failed_job(message=message), [lost, deleted])
    assert (failure.rank, failure.reason) == (1, "Terminated")
    gone = failed_worker(failed_job(message=message), [lost])
    assert (gone.rank, gone.reason) == (1, "PodDeleted")
    assert gone.describe() == "rank 1 failed: its pod was deleted"
    assert failed_worker(failed_job(), [lost]).describe() == "rank 1 failed: exit code 137"


def test_below_the_limit_a_fresh_gang_at_the_limit_failed() -> None:
    pods = oom_killed_rank_1()
    restart = decide(failed_job(attempt=1), pods, restarts=1, limit=2, generation=1)
    assert restart.action == "restart" and restart.restarts == 2 and restart.failure is not None
    assert restart.failure.rank == 1
    final = decide(failed_job(attempt=2), pods, restarts=2, limit=2, generation=1)
    assert final.action == "fail" and final.restarts == 2
    off = decide(failed_job(), pods, restarts=0, limit=0, generation=1)
    assert off.action == "fail", "restartLimit 0: no restarts"
    deadline = decide(failed_job(reason="DeadlineExceeded"), pods, restarts=0, limit=2, generation=1)
    assert deadline.action == "run", "activeDeadlineSeconds bounds the whole run: no restart"


def test_the_count_survives_an_operator_restart() -> None:
    """The restart is in status before the Job goes: a Job of an older attempt is replaced, never
    counted again; a Job being deleted is waited for."""
    pods = oom_killed_rank_1()
    assert decide(failed_job(attempt=0), pods, restarts=1, limit=2, generation=1).action == "replace"
    deleting = copy.deepcopy(failed_job(attempt=1))
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T01:06:00Z"
    assert decide(deleting, pods, restarts=1, limit=2, generation=1).action == "replace"
    assert decide(None, [], restarts=1, limit=2, generation=1).action == "run"
    older_spec = copy.deepcopy(failed_job(attempt=1))
    older_spec["metadata"]["annotations"]["kubeloop.io/generation"] = "1"
    assert decide(older_spec, pods, restarts=1, limit=2, generation=2).action == "replace", "never counted"
    running = {**failed_job(attempt=1), "status": {"active": 2}}
    assert decide(running, [], restarts=1, limit=2, generation=1).action == "run"
    failed_before_edit = TrainingJobStatus(phase="Failed", restarts=2, observed_generation=1)
    assert restarts_of(failed_before_edit, generation=1) == 2
    assert restarts_of(failed_before_edit, generation=2) == 0, "a fixed spec gets a new count"
    running_before_edit = TrainingJobStatus(phase="Running", restarts=2, observed_generation=1)
    assert restarts_of(running_before_edit, generation=2) == 2, "an edit must not undo the count"


# The reconcile against the in-memory API server.


def fail_gang(world: World, name: str = "fit") -> None:
    """What the Job controller does after rank 1 is OOM-killed: FailJob, survivors stopped."""
    job = world.get("Job", name)
    attempt = job["metadata"]["annotations"][ATTEMPT_ANNOTATION]
    world.api.store(path("Job", NS, name), {**job, "status": failed_job(int(attempt))["status"]})
    for pod in oom_killed_rank_1():
        world.api.put(path("Pod", NS, pod["metadata"]["name"]), pod)


def remove_pods(world: World) -> None:
    """The garbage collector, once the Job is deleted (foreground)."""
    for key in [k for k in world.api.objects if "/pods/" in k]:
        del world.api.objects[key]


def restarted_operator(world: World) -> None:
    world.ctx = Context(
        settings=OperatorSettings(), kube=Kube("test", transport=world.api), post=world.ctx.post
    )


def test_a_failed_worker_restarts_the_whole_gang_until_the_limit(world: World) -> None:
    world.create("TrainingJob", "fit", DDP)
    reconcile_training_job(world.ctx, NS, "fit")
    assert world.get("Job", "fit")["metadata"]["annotations"][ATTEMPT_ANNOTATION] == "0"
    assert world.status("TrainingJob", "fit")["restarts"] == 0

    for restart in (1, 2):
        fail_gang(world)
        with pytest.raises(kopf.TemporaryError, match="earlier gang"):
            reconcile_training_job(world.ctx, NS, "fit")
        status = world.status("TrainingJob", "fit")
        assert status["restarts"] == restart and status["phase"] == "Pending"
        restarting = condition(status, "Succeeded")
        assert restarting["reason"] == "Restarting"
        assert restarting["message"] == (
            f"rank 1 failed: OOMKilled (exit code 137); restarting all 2 workers (restart {restart} of 2)"
        )
        assert world.names("Job") == [], "the failed gang's Job is deleted, its pods with it"
        assert world.events[-1][:2] == ("Warning", "GangRestart") and "rank 1" in world.events[-1][2]
        remove_pods(world)
        restarted_operator(world)  # the count lives in status and on the Job, not in memory
        reconcile_training_job(world.ctx, NS, "fit")
        job = world.get("Job", "fit")
        assert job["metadata"]["annotations"][ATTEMPT_ANNOTATION] == str(restart)
        assert "status" not in job, "a fresh Job: every rank starts again"
        assert "after" in condition(world.status("TrainingJob", "fit"), "Succeeded")["message"]

    fail_gang(world)
    reconcile_training_job(world.ctx, NS, "fit")
    status = world.status("TrainingJob", "fit")
    assert status["phase"] == "Failed" and status["restarts"] == 2
    failed = condition(status, "Succeeded")
    assert failed["status"] == "False" and failed["reason"] == "OOMKilled"
    assert (
        failed["message"]
        == "rank 1 failed: OOMKilled (exit code 137); restart limit 2 reached after 2 restarts"
    )
    assert world.events[-1] == ("Warning", "OOMKilled", failed["message"])
    reconcile_training_job(world.ctx, NS, "fit")  # level-triggered: the same verdict again
    assert world.status("TrainingJob", "fit") == status and world.names("Job") == ["fit"]


def test_a_restart_written_but_not_carried_out_is_not_counted_twice(world: World) -> None:
    world.create("TrainingJob", "fit", DDP)
    reconcile_training_job(world.ctx, NS, "fit")
    fail_gang(world)

    def operator_dies_before_deleting(method: str, url: str, _: Any) -> None:
        if method == "DELETE":
            raise RuntimeError("operator killed")

    world.api.before.append(operator_dies_before_deleting)
    with pytest.raises(RuntimeError):
        reconcile_training_job(world.ctx, NS, "fit")
    world.api.before.clear()
    assert world.status("TrainingJob", "fit")["restarts"] == 1 and world.names("Job") == ["fit"]
    restarted_operator(world)
    with pytest.raises(kopf.TemporaryError):
        reconcile_training_job(world.ctx, NS, "fit")  # attempt 0's Job: replaced, not counted
    status = world.status("TrainingJob", "fit")
    assert status["restarts"] == 1 and world.names("Job") == []
    assert "rank 1 failed" in condition(status, "Succeeded")["message"]


def test_a_spec_fixed_after_the_gang_failed_starts_a_new_count(world: World) -> None:
    world.create("TrainingJob", "fit", {**DDP, "runPolicy": {"restartLimit": 0}})
    reconcile_training_job(world.ctx, NS, "fit")
    fail_gang(world)
    reconcile_training_job(world.ctx, NS, "fit")
    assert world.status("TrainingJob", "fit")["phase"] == "Failed"
    world.edit_spec("TrainingJob", "fit", {**DDP, "resources": {"memory": "8Gi"}})
    with pytest.raises(kopf.TemporaryError):
        reconcile_training_job(world.ctx, NS, "fit")  # the failed gang's Job goes
    remove_pods(world)
    reconcile_training_job(world.ctx, NS, "fit")
    job = world.get("Job", "fit")
    assert job["metadata"]["annotations"][ATTEMPT_ANNOTATION] == "0" and "status" not in job
    status = world.status("TrainingJob", "fit")
    assert status["restarts"] == 0 and status["phase"] == "Pending"
