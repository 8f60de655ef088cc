"""ModelDeployment spec.explain: validation, and the CRD schema that the API server enforces."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeloop.api.crd import crd
from kubeloop.api.deployment import ModelDeploymentSpec

pytestmark = pytest.mark.unit


def md(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"uri": "models:/churn@champion"}, **fields})


def test_explain_defaults() -> None:
    spec = md(explain={"backgroundUri": "s3://data/churn/reference.parquet"})
    assert spec.explain is not None
    assert (spec.explain.enabled, spec.explain.method) == (True, "auto")
    assert (spec.explain.background_rows, spec.explain.budget) == (100, 1000)
    assert (spec.explain.separate_pods, spec.explain.replicas) == (False, 1)
    assert md().explain is None


@pytest.mark.parametrize(
    ("explain", "problem"),
    [
        ({}, "backgroundUri"),
        ({"backgroundUri": "relative/path.parquet"}, "backgroundUri"),
        ({"backgroundUri": "/ref.csv", "method": "kernel"}, "method"),
        ({"backgroundUri": "/ref.csv", "budget": 1}, "budget"),
        ({"backgroundUri": "/ref.csv", "backgroundRows": 0}, "backgroundRows"),
        ({"backgroundUri": "/ref.csv", "replicas": 0}, "replicas"),
        ({"backgroundUri": "/ref.csv", "shards": 2}, "shards"),
    ],
)
def test_bad_explain_is_refused(explain: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        md(explain=explain)


def test_the_crd_schema_carries_explain() -> None:
    schema = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    explain = schema["properties"]["spec"]["properties"]["explain"]
    assert explain["required"] == ["backgroundUri"]
    assert explain["properties"]["method"]["enum"] == ["auto", "tree", "permutation", "lime"]
    assert explain["properties"]["budget"]["minimum"] == 2


def test_no_variant_may_take_the_explainer_track_name() -> None:
    variants = [
        {"name": "control", "weightPercent": 50},
        {"name": "explainer", "model": {"uri": "/m"}, "weightPercent": 50},
    ]
    with pytest.raises(ValidationError, match="explainer"):
        md(abTest={"header": "x-user", "variants": variants})
