"""Gang semantics of a distributed TrainingJob (workers > 1), decided from what is observed.

The Job's podFailurePolicy fails the whole Job as soon as one worker fails (render/training.py),
so no survivor is left hanging in a collective. Here the operator decides what comes next: a
fresh gang (every rank, a fresh rendezvous) while restarts stay below ``runPolicy.restartLimit``,
else Failed naming the rank that failed first and why.

The count survives an operator restart: ``status.restarts`` is the attempt the operator wants
running, and the Job carries the attempt it runs (ATTEMPT_ANNOTATION). The restart is written to
status *before* the failed Job is deleted, so a crash in between leaves a Job of an older attempt,
which is replaced without counting again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop.api.training import TrainingJobStatus
from kubeloop_operator import reasons
from kubeloop_operator.conditions import find, safe_reason, set_condition
from kubeloop_operator.render.training import ATTEMPT_ANNOTATION
from kubeloop_operator.status.training import true_condition

Obj = dict[str, Any]
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
GENERATION_ANNOTATION = "kubeloop.io/generation"  # the TrainingJob generation a Job was rendered from
# The Job controller's reasons for a Failed condition that a fresh gang may cure. Not
# DeadlineExceeded: activeDeadlineSeconds bounds the whole run, and a new Job would restart the clock.
RESTARTABLE = frozenset({"PodFailurePolicy", "BackoffLimitExceeded"})
# "Container trainer for pod ns/name failed with exit code 137 matching FailJob rule at index 1",
# "Pod ns/name has condition DisruptionTarget matching FailJob rule at index 0"
_POD_IN_MESSAGE = re.compile(r"\b[Pp]od (?P<namespace>[^/\s]+)/(?P<name>[^\s]+)")
_EXIT_CODE_IN_MESSAGE = re.compile(r"exit code (?P<code>-?\d+)")
_CONDITION_IN_MESSAGE = re.compile(r"has condition (?P<condition>\w+)")
# What a rank's collective says when another rank died (gloo, NCCL, the rendezvous store).
PEER_LOST = ("closed by peer", "reset by peer", "Broken pipe", "remote process exited", "remote worker")

Action = Literal["run", "restart", "replace", "fail"]


@dataclass(frozen=True)
class WorkerFailure:
    """A failed worker: its rank (completion index), a CamelCase reason (the trainer's own,
    OOMKilled, Evicted, a DisruptionTarget reason, Error) and details. ``follows``: it only lost a
    peer (its collective broke because another worker died), so it is not the cause."""

    rank: int | None
    reason: str
    detail: str
    follows: bool = False

    def describe(self) -> str:
        who = f"rank {self.rank}" if self.rank is not None else "a worker"
        return f"{who} failed: {self.detail}"


@dataclass(frozen=True)
class GangDecision:
    """run: apply and derive the status as usual (nothing failed, or nothing a restart could cure);
    restart: count one more restart, then delete the failed Job and its pods; replace: the Job is
    an older attempt's (or being deleted): delete it and wait; fail: the restart limit is reached."""

    action: Action
    restarts: int
    failure: WorkerFailure | None = None


def attempt_of(job: Obj) -> int:
    """The attempt a Job runs (a Job from before gang restarts existed: the first)."""
    raw = str((job["metadata"].get("annotations") or {}).get(ATTEMPT_ANNOTATION, "0"))
    return int(raw) if raw.isdigit() else 0


def restarts_of(previous: TrainingJobStatus, generation: int) -> int:
    """The restarts counted so far; a spec edited after the run ended starts a new count."""
    if previous.phase in ("Succeeded", "Failed") and previous.observed_generation != generation:
        return 0
    return previous.restarts or 0


def rank_of(pod: Obj) -> int | None:
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(INDEX_ANNOTATION) or (meta.get("labels") or {}).get(
        INDEX_ANNOTATION
    )
    return int(raw) if raw is not None and str(raw).isdigit() else None


def terminated_state(pod: Obj) -> Obj:
    """The trainer container's terminated state (empty while it runs or if it never started)."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return {}


def pod_failure(pod: Obj) -> WorkerFailure | None:
    """Why this pod failed, most specific first; None when it did not (yet)."""
    rank, status = rank_of(pod), pod.get("status", {})
    disruption = true_condition(pod, "DisruptionTarget")
    if disruption is not None:
        reason = str(disruption.get("reason") or "DisruptionTarget")
        detail = f"disrupted ({reason}): {disruption.get('message') or 'the pod was disrupted'}"
        return WorkerFailure(rank, safe_reason(reason, "DisruptionTarget"), detail)
    if status.get("reason") == "Evicted":
        return WorkerFailure(rank, "Evicted", f"evicted: {status.get('message') or 'by the kubelet'}")
    terminated = terminated_state(pod)
    code = terminated.get("exitCode", 0)
    if code == 0:
        return WorkerFailure(rank, "Failed", "the pod failed") if status.get("phase") == "Failed" else None
    kubelet = str(terminated.get("reason") or "Error")
    summary = decode(terminated.get("message") or "")
    if isinstance(summary, TrainingSummary) and summary.failure_reason and kubelet != reasons.OOM_KILLED:
        said = summary.message or "no message"
        detail = f"{summary.failure_reason} (exit code {code}): {said}"
        follows = any(phrase in said for phrase in PEER_LOST)
        return WorkerFailure(rank, safe_reason(summary.failure_reason, "Error"), detail, follows)
    return WorkerFailure(rank, safe_reason(kubelet, "Error"), f"{kubelet} (exit code {code})")


def failure_from_message(job_name: str, message: str) -> WorkerFailure:
    """What the Job controller's own message says, for a pod that is gone already."""
    pod = _POD_IN_MESSAGE.search(message)
    index = re.match(rf"^{re.escape(job_name)}-(\d+)-", pod["name"]) if pod else None
    rank = int(index[1]) if index else None
    if (exit_code := _EXIT_CODE_IN_MESSAGE.search(message)) is not None:
        return WorkerFailure(rank, "Error", f"exit code {exit_code['code']}")
    if (condition := _CONDITION_IN_MESSAGE.search(message)) is not None:
        return WorkerFailure(rank, safe_reason(condition["condition"], "Error"), message)
    return WorkerFailure(rank, reasons.FAILED, message or "the Job failed")


def missing_rank(job: Obj, pods: list[Obj]) -> int | None:
    """The lowest rank without a pod: its pod was deleted (and the Job controller let it go)."""
    seen = {rank_of(pod) for pod in pods}
    completions = int(job.get("spec", {}).get("completions") or 0)
    return next((rank for rank in range(completions) if rank not in seen), None)


def first_to_finish(failures: list[tuple[Obj, WorkerFailure]]) -> WorkerFailure:
    return min(failures, key=lambda pair: terminated_state(pair[0]).get("finishedAt") or "~")[1]


def failed_worker(job: Obj, pods: list[Obj]) -> WorkerFailure:
    """The worker that brought the gang down. The Job controller names the pod that triggered its
    FailJob rule: that one, even when its pod is gone already (deleted), unless it only lost its
    peer (then it is never the cause). Otherwise the failed pod that finished first (the survivors
    the controller stopped finish later), else the rank that has no pod (deleted)."""
    condition = true_condition(job, "Failed") or true_condition(job, "FailureTarget") or {}
    message = str(condition.get("message") or "")
    named = _POD_IN_MESSAGE.search(message)
    if named is not None:
        trigger = next((pod for pod in pods if pod["metadata"]["name"] == named["name"]), None)
        if trigger is None:
            return failure_from_message(job["metadata"]["name"], message)
        found = pod_failure(trigger)
        if found is not None and not found.follows:
            return found
    failures = [(pod, found) for pod in pods if (found := pod_failure(pod)) is not None]
    causes = [(pod, found) for pod, found in failures if not found.follows]
    if causes:
        return first_to_finish(causes)
    if (rank := missing_rank(job, pods)) is not None:
        return WorkerFailure(rank, "PodDeleted", "its pod was deleted")
    return first_to_finish(failures) if failures else failure_from_message(job["metadata"]["name"], message)


def gang_failed(job: Obj) -> bool:
    failed = true_condition(job, "Failed")
    return failed is not None and failed.get("reason") in RESTARTABLE


def decide(job: Obj | None, pods: list[Obj], restarts: int, limit: int, generation: int) -> GangDecision:
    """What to do with the gang, from the Job and pods observed now, the restarts counted and the
    spec's generation (a gang of an older spec that failed is replaced, never counted)."""
    if job is None:
        return GangDecision("run", restarts)
    if job["metadata"].get("deletionTimestamp") or attempt_of(job) != restarts:
        return GangDecision("replace", restarts)
    if not gang_failed(job):
        return GangDecision("run", restarts)
    if (job["metadata"].get("annotations") or {}).get(GENERATION_ANNOTATION, str(generation)) != str(
        generation
    ):
        return GangDecision("replace", restarts)
    failure = failed_worker(job, pods)
    if restarts < limit:
        return GangDecision("restart", restarts + 1, failure)
    return GangDecision("fail", restarts, failure)


def restart_message(decision: GangDecision, limit: int, workers: int) -> str:
    cause = decision.failure.describe() if decision.failure else "a worker failed"
    return f"{cause}; restarting all {workers} workers (restart {decision.restarts} of {limit})"


def held_status(
    previous: TrainingJobStatus, decision: GangDecision, generation: int, limit: int, workers: int
) -> TrainingJobStatus:
    """The status while a failed or stale gang is taken down (restart, replace)."""
    if decision.action == "restart":
        message = restart_message(decision, limit, workers)
    else:
        kept = find(previous.conditions, reasons.SUCCEEDED)
        restarting = kept is not None and kept.reason == reasons.RESTARTING
        message = (
            kept.message
            if restarting and kept
            else f"replacing the Job of an earlier gang ({workers} workers)"
        )
    conditions = set_condition(
        previous.conditions, reasons.SUCCEEDED, None, reasons.RESTARTING, message, generation
    )
    return previous.model_copy(
        update={
            "phase": "Pending",
            "observed_generation": generation,
            "restarts": decision.restarts,
            "conditions": conditions,
        }
    )


def gang_status(
    status: TrainingJobStatus, decision: GangDecision, generation: int, limit: int
) -> TrainingJobStatus:
    """The derived status with the gang's view added: the restarts, and for a gang that failed at
    the limit the failing rank and reason in the Succeeded condition."""
    status = status.model_copy(update={"restarts": decision.restarts})
    if decision.action == "fail" and decision.failure is not None and status.phase == "Failed":
        failure = decision.failure
        message = f"{failure.describe()}; restart limit {limit} reached after {decision.restarts} restarts"
        status.conditions = set_condition(
            status.conditions, reasons.SUCCEEDED, False, failure.reason, message, generation
        )
    elif decision.restarts and status.phase in ("Pending", "Running"):
        condition = find(status.conditions, reasons.SUCCEEDED)
        if condition is not None and condition.status == "Unknown":
            message = f"{condition.message} (after {decision.restarts} gang restarts of at most {limit})"
            status.conditions = set_condition(
                status.conditions, reasons.SUCCEEDED, None, condition.reason, message, generation
            )
    return status
