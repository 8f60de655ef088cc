"""The stable track's HPA: a CPU Resource metric by default, a Pods metric on the in-flight gauge with an
AverageValue target when asked; replicas and scale-down behaviour the same either way."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.contracts.autoscaling import INFLIGHT_METRIC, pods_metric_path, quantity
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit


def hpa(settings: OperatorSettings, **autoscaling: Any) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "s3://m/m.onnx"}, "replicas": {"min": 1, "max": 4}, "autoscaling": autoscaling}
    )
    children = render_serving(owner_of("ModelDeployment"), spec, settings)
    found = [c for c in children if c["kind"] == "HorizontalPodAutoscaler"]
    assert len(found) == 1
    manifest: dict[str, Any] = found[0]
    return manifest


def test_cpu_by_default(settings: OperatorSettings) -> None:
    assert hpa(settings, targetCpuUtilization=40)["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 40}},
        }
    ]


def test_in_flight_is_a_pods_metric_with_an_average_value(settings: OperatorSettings) -> None:
    manifest = hpa(settings, metric="inFlight", targetInFlight=4, scaleDownStabilizationSeconds=15)
    assert manifest["apiVersion"] == "autoscaling/v2"
    spec = manifest["spec"]
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": INFLIGHT_METRIC},
                "target": {"type": "AverageValue", "averageValue": "4"},
            },
        }
    ]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 15}}
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}


def test_only_the_metric_differs(settings: OperatorSettings) -> None:
    cpu = hpa(settings, scaleDownStabilizationSeconds=15)
    in_flight = hpa(settings, metric="inFlight", targetInFlight=0.5, scaleDownStabilizationSeconds=15)
    assert in_flight["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "500m"
    cpu["spec"].pop("metrics"), in_flight["spec"].pop("metrics")
    assert cpu == in_flight


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "1"), (4.0, "4"), (2.5, "2500m"), (0.01, "10m"), (0.1234, "123m"), (100000, "100000")],
)
def test_quantities(value: float, expected: str) -> None:
    assert quantity(value) == expected


def test_the_path_users_read_the_metric_at() -> None:
    assert pods_metric_path("team-a") == (
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a/pods/*/kubeloop_serving_inflight_requests"
    )
