"""TrainingJob status, derived from its Job, its pods and the summary the trainer left."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from kubeloop.api.summaries import TrainingSummary, decode
from kubeloop.api.training import TrainingJobStatus, TrainingPhase
from kubeloop_operator import reasons
from kubeloop_operator.conditions import safe_reason, set_condition
from kubeloop_operator.status.challenge import gate_condition, registered_message
from kubeloop_operator.status.fairness import fairness_condition, unregistered_message
from kubeloop_operator.status.pods import pod_problem
from kubeloop_operator.status.provenance import derive_provenance

parse_time = TypeAdapter(datetime).validate_python


def true_condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The object's condition of this type while it is True: a Job's Complete or Failed, a Pod's
    DisruptionTarget (evicted, preempted, drained: what a Job's pod failure policy reads)."""
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def pod_summary(pods: list[dict[str, Any]]) -> TrainingSummary | None:
    """The summary in the termination message of rank 0 (or of the only pod), newest pod first; a
    disrupted pod's is not the run's once a newer pod took over from it (SINGLE_FAILURE_POLICY)."""
    chiefs = [
        pod
        for pod in pods
        if (pod["metadata"].get("annotations") or {}).get("batch.kubernetes.io/job-completion-index", "0")
        == "0"
    ]
    chiefs.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    for position, pod in enumerate(chiefs):
        if position > 0 and true_condition(pod, "DisruptionTarget") is not None:
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


def phase_of(job: dict[str, Any] | None, pods: list[dict[str, Any]], suspended: bool) -> TrainingPhase:
    if job is None:
        return "Pending"
    if true_condition(job, "Complete"):  # not SuccessCriteriaMet: its pods may still be terminating
        return "Succeeded"
    if true_condition(job, "Failed"):
        return "Failed"
    if suspended or true_condition(job, "Suspended"):
        return "Suspended"
    running = any(p.get("status", {}).get("phase") == "Running" for p in pods)
    return "Running" if job.get("status", {}).get("active") and running else "Pending"


def failure(
    job: dict[str, Any], pods: list[dict[str, Any]], summary: TrainingSummary | None
) -> tuple[str, str]:
    """(reason, message) of a failed run, most specific first: the deadline (a trainer only sees a
    SIGTERM), the trainer's own verdict, the kubelet's (an OOM kill leaves no summary), the Job's."""
    failed = true_condition(job, "Failed") or {}
    if failed.get("reason") == reasons.DEADLINE_EXCEEDED:
        return reasons.DEADLINE_EXCEEDED, failed.get("message") or "activeDeadlineSeconds passed"
    if summary is not None and summary.failure_reason:
        return summary.failure_reason, summary.message or "the trainer reported a failure"
    kubelet = pod_failure_reason(pods)
    if kubelet == reasons.OOM_KILLED:
        return reasons.OOM_KILLED, "a training container ran out of memory; raise spec.resources.memory"
    return str(failed.get("reason") or kubelet or reasons.FAILED), str(
        failed.get("message") or "the training Job failed"
    )


def derive_training_status(
    previous: TrainingJobStatus,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    generation: int,
    suspended: bool,
    mlflow_ui_url: str,
    challenged: bool = False,
    fairness_gated: bool = False,
    triggered_by: str | None = None,
) -> TrainingJobStatus:
    """The whole status from what is observed now; `previous` only keeps condition history.
    ``challenged`` / ``fairness_gated``: the spec has a challenger / fairness gate (its condition
    is Unknown until a verdict); ``triggered_by``: the drift check that created this TrainingJob."""
    phase = phase_of(job, pods, suspended)
    summary = pod_summary(pods)
    job_status = (job or {}).get("status", {})
    status = TrainingJobStatus(
        observed_generation=generation,
        phase=phase,
        job_name=job["metadata"]["name"] if job else None,
        start_time=job_status.get("startTime"),
        completion_time=job_status.get("completionTime"),
        provenance=derive_provenance(summary, pods, triggered_by),
    )
    if summary is not None:
        status.mlflow_run_id, status.mlflow_run_url = summary.mlflow_run_id, summary.mlflow_run_url
        status.metrics, status.best_trial = summary.metrics, summary.best_trial
        status.registered_model, status.challenge = summary.registered_model, summary.challenge
        status.fairness = summary.fairness
        if summary.mlflow_run_id and not summary.mlflow_run_url:
            status.mlflow_run_url = f"{mlflow_ui_url.rstrip('/')}/#/runs/{summary.mlflow_run_id}"
    if phase == "Succeeded":
        message = unregistered_message(status.fairness) or registered_message(
            status.registered_model, status.challenge
        )
        verdict, reason = True, reasons.COMPLETED
    elif phase == "Failed" and job is not None:
        failed_at = (true_condition(job, "Failed") or {}).get("lastTransitionTime")
        if failed_at and status.completion_time is None:  # the Job controller sets it only on success
            status.completion_time = parse_time(failed_at)
        reason, message = failure(job, pods, summary)
        verdict, reason = False, safe_reason(reason, reasons.FAILED)
    else:
        verdict, reason, message = None, phase, f"training is {phase.lower()}"
        stuck = pod_problem(pods) if phase in ("Pending", "Running") else None
        if stuck is not None:  # Running too: one worker of a gang may run while another cannot
            reason, message = stuck[0], f"training is {phase.lower()}; {stuck[1]}"
    conditions = set_condition(previous.conditions, reasons.SUCCEEDED, verdict, reason, message, generation)
    conditions = gate_condition(conditions, status.challenge, challenged, phase, generation)
    status.conditions = fairness_condition(conditions, status.fairness, fairness_gated, phase, generation)
    return status
