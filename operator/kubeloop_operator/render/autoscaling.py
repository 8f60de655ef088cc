"""The HorizontalPodAutoscaler's metric: CPU utilization, or requests in flight per pod."""

from __future__ import annotations

from typing import Any

from kubeloop.api.deployment import Autoscaling
from kubeloop.contracts.autoscaling import INFLIGHT_METRIC, quantity


def hpa_metrics(autoscaling: Autoscaling) -> list[dict[str, Any]]:
    """`spec.metrics` of the stable track's HPA. inFlight is a Pods metric from the custom metrics API
    (prometheus-adapter); its AverageValue target makes desired replicas ceil(sum over pods / target)."""
    if autoscaling.metric == "inFlight":
        assert autoscaling.target_in_flight is not None  # the schema requires it with inFlight
        return [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": INFLIGHT_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": quantity(autoscaling.target_in_flight),
                    },
                },
            }
        ]
    return [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": autoscaling.target_cpu_utilization},
            },
        }
    ]
