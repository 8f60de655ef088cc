"""The Autoscaling condition of a ModelDeployment: what its HorizontalPodAutoscaler says it can do."""

from __future__ import annotations

from typing import Any

from kubeloop.api.common import Condition
from kubeloop.api.deployment import Autoscaling
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition

#: The HPA controller's reasons when the metric behind `spec.autoscaling.metric` cannot be read
#: (kubernetes pkg/controller/podautoscaler), and where that metric comes from.
WHERE_FROM = {
    "FailedGetPodsMetric": "requests in flight per pod come from the custom metrics API: install "
    "prometheus-adapter (the chart's prometheusAdapter.enabled) or another adapter serving the metric",
    "FailedGetResourceMetric": "CPU utilization comes from the resource metrics API (metrics-server); "
    "pods that just started have none for a minute",
}


def hpa_conditions(hpa: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The HPA's status conditions by type (AbleToScale, ScalingActive, ScalingLimited)."""
    conditions = ((hpa or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conditions if "type" in c}


def target(autoscaling: Autoscaling) -> str:
    if autoscaling.metric == "inFlight":
        return f"requests in flight per pod, target {autoscaling.target_in_flight:g}"
    return f"CPU utilization, target {autoscaling.target_cpu_utilization}%"


def autoscaling_condition(
    conditions: list[Condition],
    hpa: dict[str, Any] | None,
    autoscaling: Autoscaling,
    generation: int,
) -> list[Condition]:
    """True while the HPA can read its metric and scale; False with the HPA's own reason and message
    (and where the metric comes from) when it cannot: without the metric it keeps its replicas, so
    a ModelDeployment would otherwise look fine and never scale. Unknown until the HPA reports."""
    found = hpa_conditions(hpa)
    able, active = found.get("AbleToScale"), found.get("ScalingActive")
    failing = next((c for c in (able, active) if c is not None and c["status"] == "False"), None)
    if failing is not None:
        reason = failing.get("reason", reasons.PENDING)
        message = failing.get("message", "")
        if reason in WHERE_FROM:
            message = f"{message} ({WHERE_FROM[reason]})"
        return set_condition(conditions, reasons.AUTOSCALING, False, reason, message, generation)
    if active is None or active["status"] != "True":
        message = "the HorizontalPodAutoscaler has not reported yet"
        return set_condition(conditions, reasons.AUTOSCALING, None, reasons.PENDING, message, generation)
    spec, status = (hpa or {}).get("spec") or {}, (hpa or {}).get("status") or {}
    message = (
        f"replicas {status.get('currentReplicas', 0)}, desired {status.get('desiredReplicas', 0)}, "
        f"range {spec.get('minReplicas', 1)} to {spec.get('maxReplicas')}; on {target(autoscaling)}"
    )
    limited = found.get("ScalingLimited")
    if limited is not None and limited["status"] == "True":
        message += f": limited, {limited.get('message', limited.get('reason', ''))}"
    reason = active.get("reason", reasons.AUTOSCALING)
    return set_condition(conditions, reasons.AUTOSCALING, True, reason, message, generation)
