"""ModelDeployment autoscaling: CPU by default, in-flight requests per pod when asked; the model refuses
what the CRD's CEL rule refuses, with the same message, and the rule reaches the schema."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.deployment import IN_FLIGHT_MINIMUM_RULE, IN_FLIGHT_RULE, ModelDeploymentSpec

pytestmark = pytest.mark.unit


def md(**autoscaling: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"uri": "s3://m/m.onnx"}, "autoscaling": autoscaling})


def test_cpu_is_the_default() -> None:
    scaling = md().autoscaling
    assert (scaling.metric, scaling.target_cpu_utilization, scaling.target_in_flight) == ("cpu", 70, None)


def test_in_flight_with_its_target() -> None:
    scaling = md(metric="inFlight", targetInFlight=2.5, scaleDownStabilizationSeconds=10).autoscaling
    assert (scaling.metric, scaling.target_in_flight, scaling.scale_down_stabilization_seconds) == (
        "inFlight",
        2.5,
        10,
    )
    assert scaling.wire() == {
        "metric": "inFlight",
        "targetCpuUtilization": 70,
        "targetInFlight": 2.5,
        "scaleDownStabilizationSeconds": 10,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "inFlight"}, IN_FLIGHT_RULE["message"]),
        ({"targetInFlight": 4}, IN_FLIGHT_RULE["message"]),
        ({"metric": "cpu", "targetInFlight": 4}, IN_FLIGHT_RULE["message"]),
        ({"metric": "queue"}, "metric"),
        ({"metric": "inFlight", "targetInFlight": 0}, "targetInFlight"),
        ({"metric": "inFlight", "targetInFlight": -1}, "targetInFlight"),
        ({"metric": "inFlight", "targetInFlight": "lots"}, "targetInFlight"),
        ({"metric": "inFlight", "targetInFlight": 1e6}, "targetInFlight"),
    ],
)
def test_refused_with_the_field_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        md(**fields)


def test_the_rule_and_ranges_reach_the_schema() -> None:
    spec = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    autoscaling = spec["properties"]["autoscaling"]
    assert autoscaling["x-kubernetes-validations"] == [IN_FLIGHT_RULE]
    metric = autoscaling["properties"]["metric"]
    assert (metric["enum"], metric["default"]) == (["cpu", "inFlight"], "cpu")
    target = autoscaling["properties"]["targetInFlight"]
    assert (target["type"], target["minimum"], target["maximum"]) == ("number", 0.01, 100000)
    assert "default" not in target
    assert target["x-kubernetes-validations"] == [IN_FLIGHT_MINIMUM_RULE], "0 passes `minimum` as an integer"
