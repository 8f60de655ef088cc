"""DriftMonitor status, derived from the finished check Jobs of its CronJob and their summaries."""

from __future__ import annotations

from typing import Any

from kubeloop.api.summaries import DriftSummary, decode
from kubeloop_operator.conditions import Conditions, set_condition


def finished(job: dict[str, Any]) -> str | None:
    """'Complete', 'Failed' or None for a running check."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return None


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


def check_time(job: dict[str, Any]) -> str:
    """When a check finished (RFC 3339 in UTC, so comparable as text)."""
    status = job.get("status", {})
    ended = [
        c.get("lastTransitionTime")
        for c in status.get("conditions") or []
        if c.get("type") in ("Complete", "Failed")
    ]
    return str(
        status.get("completionTime") or next(iter(ended), None) or job["metadata"]["creationTimestamp"]
    )


def apply_check(
    current: dict[str, Any],
    job: dict[str, Any],
    summary: DriftSummary | None,
    generation: int,
    failure: str | None = None,
) -> dict[str, Any]:
    """Status after one finished check Job. Applying the same Job twice, or a Job older than the last
    one applied (as when a restarted operator sees every finished Job again), changes nothing."""
    name = job["metadata"]["name"]
    finished_at = check_time(job)
    if current.get("lastCheckJob") == name or finished_at < (current.get("lastCheckTime") or ""):
        return dict(current)
    status = dict(current)
    status["lastCheckJob"] = name
    status["lastCheckTime"] = finished_at
    conditions: Conditions = list(current.get("conditions") or [])
    if finished(job) == "Complete" and summary is not None:
        status["checksSucceeded"] = int(current.get("checksSucceeded", 0)) + 1
        status |= {
            "driftShare": summary.drift_share,
            "datasetDrift": summary.dataset_drift,
            "features": [f.wire() for f in summary.features],
        }
        if summary.report_uri:
            status["reportUri"] = summary.report_uri
        drifted = [f.name for f in summary.features if f.drifted]
        message = (
            f"{len(drifted)}/{len(summary.features)} features drifted ({', '.join(drifted[:5])})"
            if drifted
            else "no feature drifted"
        )
        reason = "DatasetDrift" if summary.dataset_drift else "NoDatasetDrift"
        conditions = set_condition(
            conditions, "DriftDetected", summary.dataset_drift, reason, message, generation
        )
    else:
        status["checksFailed"] = int(current.get("checksFailed", 0)) + 1
        conditions = set_condition(
            conditions,
            "DriftDetected",
            None,
            "CheckFailed",
            f"drift check {name} failed: {failure or 'no summary'}"[:1024],
            generation,
        )
    status["conditions"] = conditions
    return status


def should_retrain(
    status: dict[str, Any], now_epoch: float, last_triggered_epoch: float | None, cooldown: int
) -> bool:
    """One retrain per drift episode: only on dataset drift, and never inside the cooldown."""
    if not status.get("datasetDrift"):
        return False
    return last_triggered_epoch is None or now_epoch - last_triggered_epoch >= cooldown
