"""ModelDeployment's shadow and abTest: the models refuse what the CRD's CEL rules refuse, with the
same messages, and the rules reach the schema."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.deployment import (
    CONTROL_RULE,
    ONE_SPLIT_RULE,
    RESERVED_RULE,
    VARIANT_NAMES_RULE,
    WEIGHTS_RULE,
    ModelDeploymentSpec,
)

pytestmark = pytest.mark.unit
CONTROL = {"name": "control", "weightPercent": 50}
ARM = {"name": "forest", "model": {"uri": "s3://m/forest.onnx"}, "weightPercent": 50}


def md(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"uri": "models:/churn@champion"}, **fields})


def ab(*variants: dict[str, Any]) -> dict[str, Any]:
    return {"header": "x-user-id", "variants": list(variants)}


def test_valid_shadow_and_ab_test() -> None:
    spec = md(shadow={"model": {"uri": "models:/churn/9"}, "percent": 10}, abTest=ab(CONTROL, ARM))
    assert spec.shadow is not None and spec.shadow.queue_size == 1000
    assert spec.ab_test is not None and spec.ab_test.control.name == "control"
    assert [v.name for v in spec.ab_test.arms] == ["forest"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"shadow": {"model": {"uri": "/m.onnx"}, "percent": 0}}, "percent"),
        ({"shadow": {"model": {"uri": "/m.onnx"}, "percent": 101}}, "percent"),
        ({"shadow": {"percent": 10}}, "model"),
        (
            {"abTest": ab(CONTROL, ARM), "canary": {"model": {"uri": "/c.onnx"}, "trafficPercent": 5}},
            ONE_SPLIT_RULE["message"],
        ),
        ({"abTest": ab(CONTROL, {**ARM, "name": "control"})}, VARIANT_NAMES_RULE["message"]),
        ({"abTest": ab(CONTROL, {**ARM, "weightPercent": 40})}, WEIGHTS_RULE["message"]),
        ({"abTest": ab({**ARM, "name": "a"}, ARM)}, CONTROL_RULE["message"]),
        ({"abTest": ab(CONTROL, {"name": "b", "weightPercent": 50})}, CONTROL_RULE["message"]),
        ({"abTest": ab(CONTROL, {**ARM, "name": "shadow"})}, RESERVED_RULE["message"]),
        ({"abTest": ab(CONTROL, {**ARM, "name": "Forest"})}, "name"),
        ({"abTest": ab(CONTROL, {**ARM, "name": "v" * 31})}, "at most 30"),
        ({"abTest": ab({**CONTROL, "weightPercent": 100})}, "at least 2"),
        ({"abTest": {**ab(CONTROL, ARM), "header": "x user"}}, "header"),
    ],
)
def test_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        md(**fields)


def test_rules_reach_the_schema() -> None:
    spec = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert ONE_SPLIT_RULE in spec["x-kubernetes-validations"]
    variants = spec["properties"]["abTest"]["properties"]["variants"]
    assert variants["x-kubernetes-validations"] == [VARIANT_NAMES_RULE, CONTROL_RULE, WEIGHTS_RULE]
    assert (variants["minItems"], variants["maxItems"]) == (2, 10)
    assert variants["items"]["x-kubernetes-validations"] == [RESERVED_RULE]
    assert variants["items"]["required"] == ["name", "weightPercent"]
    shadow = spec["properties"]["shadow"]
    assert (shadow["properties"]["percent"]["minimum"], shadow["properties"]["percent"]["maximum"]) == (
        1,
        100,
    )
    status = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]
    assert {"shadow", "abTest"} <= set(status["properties"])
