"""Autoscaling on requests in flight against a real kube-apiserver and kube-controller-manager: the CRD's
rule refuses what the model refuses, the operator's HPA is accepted as rendered, and the real HPA
controller says what is missing on a cluster without the custom metrics API (here: no adapter), and
so does the ModelDeployment's Autoscaling condition."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import IN_FLIGHT_RULE
from kubeloop.contracts.autoscaling import INFLIGHT_METRIC
from tests.cluster.manifests import model_deployment
from tests.fixtures.cluster import Cluster, OperatorProcess, wait_for

pytestmark = pytest.mark.cluster

IN_FLIGHT = {"metric": "inFlight", "targetInFlight": 2.5, "scaleDownStabilizationSeconds": 15}
REFUSED = {
    "inFlight without its target": ({"metric": "inFlight"}, IN_FLIGHT_RULE["message"]),
    "a target with cpu": ({"metric": "cpu", "targetInFlight": 4}, IN_FLIGHT_RULE["message"]),
    "an unknown metric": ({"metric": "queue", "targetInFlight": 4}, "spec.autoscaling.metric"),
    "a zero target": ({"metric": "inFlight", "targetInFlight": 0}, "targetInFlight must be at least 0.01"),
    "a target below 0.01": ({"metric": "inFlight", "targetInFlight": 0.001}, "autoscaling.targetInFlight"),
}


@pytest.mark.parametrize(("autoscaling", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_by_the_api_server(crds: Cluster, autoscaling: dict[str, Any], expected: str) -> None:
    manifest = model_deployment(autoscaling=autoscaling)
    result = crds.kubectl.apply(manifest, "default", "--dry-run=server", "--validate=strict")
    assert result.returncode != 0, f"accepted: {autoscaling}"
    assert expected in result.stderr, result.stderr


def status_condition(kubectl: Any, kind: str, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
    """One status condition of an object (the HPA's ScalingActive, the ModelDeployment's Autoscaling)."""
    status = (kubectl.get(kind, name, namespace) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def test_the_in_flight_hpa_and_what_the_controller_says_without_the_adapter(
    operator: OperatorProcess, namespace: str
) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(
        model_deployment("busy", model={"uri": "s3://models/busy.onnx"}, autoscaling=IN_FLIGHT), namespace
    )
    hpa = wait_for(lambda: kubectl.get("hpa", "busy", namespace), 90, what="the HPA")
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": INFLIGHT_METRIC},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 15
    active = wait_for(
        lambda: (
            (c := status_condition(kubectl, "hpa", namespace, "busy", "ScalingActive"))
            and c["status"] == "False"
            and c
        ),
        120,
        interval=2,
        what="the HPA controller's ScalingActive condition",
    )
    assert active["reason"] == "FailedGetPodsMetric", active
    assert INFLIGHT_METRIC in active["message"], active
    # The ModelDeployment says it too, where `kubectl get`/`describe` of it shows it.
    autoscaling = wait_for(
        lambda: (
            (c := status_condition(kubectl, "modeldeployment", namespace, "busy", "Autoscaling"))
            and c["status"] == "False"
            and c
        ),
        60,
        interval=1,
        what="the ModelDeployment's Autoscaling condition",
    )
    assert autoscaling["reason"] == "FailedGetPodsMetric", autoscaling
    assert autoscaling["message"].startswith(active["message"]), autoscaling
    assert "prometheus-adapter" in autoscaling["message"], autoscaling
