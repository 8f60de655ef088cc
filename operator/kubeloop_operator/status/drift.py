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


def job_summary(pods: list[dict[str, Any]]) -> DriftSummary | None:
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            message = (status.get("state", {}).get("terminated") or {}).get("message")
            summary = decode(message) if message else None
            if isinstance(summary, DriftSummary):
                return summary
    return None


def latest_finished(jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [j for j in jobs if finished(j)]
    return max(
        done,
        key=lambda j: j.get("status", {}).get("completionTime") or j["metadata"]["creationTimestamp"],
        default=None,
    )


def apply_check(
    current: dict[str, Any], job: dict[str, Any], summary: DriftSummary | None, generation: int
) -> dict[str, Any]:
    """Status after one finished check Job; applying the same Job twice changes nothing."""
    name = job["metadata"]["name"]
    if current.get("lastCheckJob") == name:
        return dict(current)
    status = dict(current)
    status["lastCheckJob"] = name
    status["lastCheckTime"] = (
        job.get("status", {}).get("completionTime") or job["metadata"]["creationTimestamp"]
    )
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
            conditions, "DriftDetected", None, "CheckFailed", f"drift check {name} failed", generation
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
