"""DriftMonitor status, derived from the finished check Jobs of its CronJob and their summaries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from kubeloop.api.common import Condition
from kubeloop.api.drift import DriftMonitorStatus
from kubeloop.api.performance import PerformanceResult
from kubeloop.api.summaries import DriftSummary, decode
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.status.training import true_condition

parse_time = TypeAdapter(datetime).validate_python


def finished(job: dict[str, Any]) -> str | None:
    """'Complete', 'Failed' or None for a running check (the Job controller never sets both)."""
    for type_ in ("Complete", "Failed"):
        if true_condition(job, type_) is not None:
            return type_
    return None


def job_failure(job: dict[str, Any]) -> str | None:
    """The Job controller's word on a failed check (DeadlineExceeded: a pod that never ran, such as one
    whose image could not be pulled, and is gone by then; BackoffLimitExceeded)."""
    condition = true_condition(job, "Failed")
    if condition is None:
        return None
    return f"{condition.get('reason') or 'Failed'}: {condition.get('message') or 'no message'}"


def termination_messages(pods: list[dict[str, Any]]) -> list[str]:
    return [
        message
        for pod in pods
        for status in pod.get("status", {}).get("containerStatuses") or []
        if (message := (status.get("state", {}).get("terminated") or {}).get("message"))
    ]


def job_summary(pods: list[dict[str, Any]]) -> DriftSummary | None:
    for message in termination_messages(pods):
        summary = decode(message)
        if isinstance(summary, DriftSummary):
            return summary
    return None


def check_time(job: dict[str, Any]) -> datetime:
    """When a check finished."""
    status = job.get("status", {})
    ended = [
        c.get("lastTransitionTime")
        for c in status.get("conditions") or []
        if c.get("type") in ("Complete", "Failed")
    ]
    return parse_time(
        status.get("completionTime") or next(iter(ended), None) or job["metadata"]["creationTimestamp"]
    )


def is_new(current: DriftMonitorStatus, job: dict[str, Any]) -> bool:
    """A finished check not applied yet, and not older than the last one applied (a restarted
    operator sees every finished Job again)."""
    if finished(job) is None or current.last_check_job == job["metadata"]["name"]:
        return False
    return current.last_check_time is None or check_time(job) >= current.last_check_time


def apply_check(
    current: DriftMonitorStatus,
    job: dict[str, Any],
    summary: DriftSummary | None,
    generation: int,
    failure: str | None = None,
) -> DriftMonitorStatus:
    """Status after one finished check Job; a Job that is not new (is_new) changes nothing."""
    if not is_new(current, job):
        return current
    name = job["metadata"]["name"]
    status = current.model_copy(update={"last_check_job": name, "last_check_time": check_time(job)})
    if finished(job) == "Complete" and summary is not None:
        status.checks_succeeded += 1
        status.drift_share, status.dataset_drift = summary.drift_share, summary.dataset_drift
        status.features = list(summary.features)
        status.report_uri = summary.report_uri or status.report_uri
        drifted = [f.name for f in summary.features if f.drifted]
        message = (
            f"{len(drifted)}/{len(summary.features)} features drifted ({', '.join(drifted[:5])})"
            if drifted
            else "no feature drifted"
        )
        reason = reasons.DATASET_DRIFT if summary.dataset_drift else reasons.NO_DATASET_DRIFT
        verdict: bool | None = summary.dataset_drift
        status.performance = summary.performance
        if summary.performance is not None:
            status.conditions = performance_condition(status.conditions, summary.performance, generation)
    else:
        status.checks_failed += 1
        reason, verdict = reasons.CHECK_FAILED, None
        message = f"drift check {name} failed: {failure or job_failure(job) or 'no summary'}"[:1024]
    status.conditions = set_condition(
        status.conditions, reasons.DRIFT_DETECTED, verdict, reason, message, generation
    )
    return status


def performance_condition(
    conditions: list[Condition], performance: PerformanceResult, generation: int
) -> list[Condition]:
    """PerformanceDegraded: True past a threshold, False within them, Unknown when not measured."""
    if performance.error is not None:
        degraded, reason, message = None, reasons.PERFORMANCE_NOT_MEASURED, performance.error
    elif performance.degraded:
        degraded, reason, message = True, reasons.BELOW_THRESHOLD, performance.message or ""
    else:
        degraded, reason = False, reasons.WITHIN_THRESHOLDS
        message = performance.message or "every metric within its threshold"
    return set_condition(
        conditions, reasons.PERFORMANCE_DEGRADED, degraded, reason, message[:1024], generation
    )


def should_retrain(status: DriftMonitorStatus, now: datetime, cooldown_seconds: int) -> bool:
    """One retrain per drift episode: only on dataset drift, and never inside the cooldown."""
    if not status.dataset_drift:
        return False
    last = status.last_triggered_time
    return last is None or now - last >= timedelta(seconds=cooldown_seconds)
