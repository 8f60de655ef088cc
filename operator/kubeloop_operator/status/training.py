"""TrainingJob status, derived from its Job, its pods and the summary the trainer left."""

from __future__ import annotations

from typing import Any

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop_operator.conditions import Conditions, set_condition


def job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def pod_summary(pods: list[dict[str, Any]]) -> TrainingSummary | None:
    """The summary in the termination message of rank 0 (or of the only pod), newest pod first."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    for pod in ordered:
        annotations = pod["metadata"].get("annotations") or {}
        if annotations.get("batch.kubernetes.io/job-completion-index", "0") != "0":
            continue
        for status in pod.get("status", {}).get("containerStatuses") or []:
            message = (status.get("state", {}).get("terminated") or {}).get("message")
            summary = decode(message) if message else None
            if isinstance(summary, TrainingSummary):
                return summary
    return None


def pod_failure_reason(pods: list[dict[str, Any]]) -> str | None:
    """The kubelet's reason for a failed container (OOMKilled, Error, ...), if any pod has one."""
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = status.get("state", {}).get("terminated") or {}
            if terminated.get("exitCode", 0) != 0:
                return str(terminated.get("reason") or "Error")
    return None


def phase_of(job: dict[str, Any] | None, pods: list[dict[str, Any]], suspended: bool) -> str:
    if job is None:
        return "Pending"
    if job_condition(job, "Complete"):  # not SuccessCriteriaMet: its pods may still be terminating
        return "Succeeded"
    if job_condition(job, "Failed"):
        return "Failed"
    if suspended or job_condition(job, "Suspended"):
        return "Suspended"
    running = any(p.get("status", {}).get("phase") == "Running" for p in pods)
    return "Running" if job.get("status", {}).get("active") and running else "Pending"


def failure(
    job: dict[str, Any], pods: list[dict[str, Any]], summary: TrainingSummary | None
) -> tuple[str, str]:
    """(reason, message) of a failed run, most specific first: the deadline (a trainer only sees a
    SIGTERM), the trainer's own verdict, the kubelet's (an OOM kill leaves no summary), the Job's."""
    failed = job_condition(job, "Failed") or {}
    if failed.get("reason") == "DeadlineExceeded":
        return "DeadlineExceeded", failed.get("message") or "activeDeadlineSeconds passed"
    if summary is not None and summary.failure_reason:
        return summary.failure_reason, summary.message or "the trainer reported a failure"
    kubelet = pod_failure_reason(pods)
    if kubelet == "OOMKilled":
        return "OOMKilled", "a training container ran out of memory; raise spec.resources.memory"
    return str(failed.get("reason") or kubelet or "Failed"), str(
        failed.get("message") or "the training Job failed"
    )


def derive_training_status(
    current: dict[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    generation: int,
    suspended: bool,
    mlflow_ui_url: str,
) -> dict[str, Any]:
    """The whole status object from what is observed now; `current` only keeps condition history."""
    phase = phase_of(job, pods, suspended)
    summary = pod_summary(pods)
    status: dict[str, Any] = {"observedGeneration": generation, "phase": phase}
    if job is not None:
        status["jobName"] = job["metadata"]["name"]
        for field in ("startTime", "completionTime"):
            if job.get("status", {}).get(field):
                status[field] = job["status"][field]
    if summary is not None:
        status |= summary.model_dump(
            by_alias=True, exclude_none=True, exclude={"kind", "failure_reason", "message"}
        )
        if summary.mlflow_run_id and not summary.mlflow_run_url:
            status["mlflowRunUrl"] = f"{mlflow_ui_url.rstrip('/')}/#/runs/{summary.mlflow_run_id}"
    conditions: Conditions = list(current.get("conditions") or [])
    if phase == "Succeeded":
        registered = summary.registered_model if summary else None
        message = (
            f"registered {registered.name} version {registered.version}"
            if registered
            else "training completed"
        )
        conditions = set_condition(conditions, "Succeeded", True, "Completed", message, generation)
    elif phase == "Failed" and job is not None:
        failed_at = (job_condition(job, "Failed") or {}).get("lastTransitionTime")
        if failed_at:  # the Job controller sets completionTime only on success
            status.setdefault("completionTime", failed_at)
        reason, message = failure(job, pods, summary)
        conditions = set_condition(conditions, "Succeeded", False, reason, message, generation)
    else:
        conditions = set_condition(
            conditions, "Succeeded", None, phase, f"training is {phase.lower()}", generation
        )
    status["conditions"] = conditions
    return status
