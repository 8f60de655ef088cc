"""The CRDs are generated from the typed models, structurally sound, and committed up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeloop.api.crd import all_crds, crd, structural
from kubeloop.crds_cli import render_all

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(schema, dict):
        out.append((path, schema))
        for name, sub in (schema.get("properties") or {}).items():
            out += walk(sub, f"{path}.{name}")
        if isinstance(schema.get("items"), dict):
            out += walk(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            out += walk(schema["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", ["TrainingJob", "ModelDeployment", "DriftMonitor"])
def test_every_node_is_structural(kind: str) -> None:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "$ref" not in node and "title" not in node, path
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), f"{kind}{path} has no type"
        assert node.get("default", 0) is not None, f"{kind}{path} defaults to null"
        assert node.get("additionalProperties") is not False, path


@pytest.mark.parametrize(
    ("kind", "short", "status_fields"),
    [
        (
            "TrainingJob",
            "tj",
            {"phase", "mlflowRunId", "registeredModel", "conditions", "observedGeneration"},
        ),
        ("ModelDeployment", "mdep", {"readyReplicas", "model", "url", "conditions", "observedGeneration"}),
        (
            "DriftMonitor",
            "dm",
            {"driftShare", "features", "reportUri", "conditions", "lastTriggeredTrainingJob"},
        ),
    ],
)
def test_names_status_and_columns(kind: str, short: str, status_fields: set[str]) -> None:
    doc = crd(kind)
    assert doc["spec"]["names"]["shortNames"] == [short]
    assert doc["spec"]["names"]["categories"] == ["kubeloop"]
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status_fields <= set(status["properties"])
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_defaults_ranges_and_rules_reach_the_schema() -> None:
    spec = crd("ModelDeployment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    replicas = spec["properties"]["replicas"]
    assert replicas["properties"]["min"] == {"type": "integer", "default": 1, "minimum": 1, "maximum": 1000}
    assert replicas["x-kubernetes-validations"][0]["rule"] == "self.min <= self.max"
    percent = spec["properties"]["canary"]["properties"]["trafficPercent"]
    assert (percent["minimum"], percent["maximum"]) == (0, 100)
    cpu = spec["properties"]["resources"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True


def test_exclusive_bounds_use_openapi_v3_booleans() -> None:
    assert structural({"type": "number", "exclusiveMinimum": 0}) == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }


def test_optional_fields_drop_null() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "description": "d"}
    assert structural(schema) == {"type": "string", "description": "d"}


def test_committed_crds_match_the_models() -> None:
    for directory in (ROOT / "crds", ROOT / "charts/kubeloop/crds"):
        for name, text in render_all().items():
            path = directory / name
            assert path.exists(), f"{path} missing: run `make crds`"
            assert path.read_text() == text, f"{path} is stale: run `make crds`"


def test_generated_yaml_parses_back() -> None:
    for name, text in render_all().items():
        assert yaml.safe_load(text) == all_crds()[name]
