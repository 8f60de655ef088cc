"""values.schema.json refuses bad values at `helm install`, and helm's message names the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.chart.helm import ALL_ON, CHART, template_text

pytestmark = pytest.mark.unit

# (values, what helm's error must say): each refused before anything is rendered.
BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown top-level key": ({"replica": 2}, ["at ''", "additional properties 'replica' not allowed"]),
    "misspelt nested key": (
        {"operator": {"setings": {}}},
        ["at '/operator'", "additional properties 'setings' not allowed"],
    ),
    "wrong type": ({"operator": {"replicas": "one"}}, ["/operator/replicas", "got string, want integer"]),
    "bad image pull policy": (
        {"image": {"pullPolicy": "Sometimes"}},
        ["/image/pullPolicy", "must be one of 'Always', 'IfNotPresent', 'Never'"],
    ),
    "negative replicas": ({"operator": {"replicas": -1}}, ["/operator/replicas", "minimum: got -1, want 0"]),
    "two operators (kopf runs standalone)": (
        {"operator": {"replicas": 2}},
        ["/operator/replicas", "maximum: got 2, want 1"],
    ),
    "port out of range": (
        {"operator": {"metricsPort": 70000}},
        ["/operator/metricsPort", "maximum: got 70,000, want 65,535"],
    ),
    "port zero": ({"mlflow": {"port": 0}}, ["/mlflow/port", "minimum: got 0, want 1"]),
    "bad enum": (
        {"operator": {"settings": {"serviceMonitors": "maybe"}}},
        ["/operator/settings/serviceMonitors", "must be one of 'auto', true, false"],
    ),
    "root user (restricted Pod Security Standard)": (
        {"operator": {"podSecurityContext": {"runAsUser": 0}}},
        ["/operator/podSecurityContext/runAsUser", "minimum: got 0, want 1"],
    ),
    "a database URI as a value (secrets by reference only)": (
        {"mlflow": {"backendStore": {"uri": "postgresql://user:password@db/mlflow"}}},
        ["/mlflow/backendStore", "additional properties 'uri' not allowed"],
    ),
    "namespaced RBAC without namespaces": (
        {"rbac": {"namespaced": True}},
        ["/operator/watchNamespaces", "minItems: got 0, want 1"],
    ),
    "namespaced RBAC with a pattern": (
        {"rbac": {"namespaced": True}, "operator": {"watchNamespaces": ["team-*"]}},
        ["/operator/watchNamespaces/0", "'team-*' does not match pattern"],
    ),
    "bad scrape interval": (
        {"monitoring": {"podMonitor": {"interval": "15 seconds"}}},
        ["/monitoring/podMonitor/interval", "'15 seconds' does not match pattern"],
    ),
    "bad resource quantity": (
        {"operator": {"resources": {"limits": {"memory": "lots"}}}},
        ["/operator/resources/limits/memory"],
    ),
    "bad access mode": (
        {"mlflow": {"persistence": {"accessModes": ["ReadWriteSometimes"]}}},
        ["/mlflow/persistence/accessModes/0", "must be one of 'ReadWriteOnce'"],
    ),
    "env var with both value and valueFrom": (
        {
            "operator": {
                "extraEnv": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
            }
        },
        ["/operator/extraEnv/0"],
    ),
    "unknown alert": (
        {"alerts": {"driftDetect": {"enabled": True}}},
        ["at '/alerts'", "additional properties 'driftDetect' not allowed"],
    ),
    "error-rate threshold as a percentage": (
        {"alerts": {"servingErrorRate": {"threshold": 5}}},
        ["/alerts/servingErrorRate/threshold", "maximum: got 5, want 1"],
    ),
    "bad alert duration": (
        {"alerts": {"servingLatencyP99": {"for": "10 minutes"}}},
        ["/alerts/servingLatencyP99/for", "does not match pattern"],
    ),
    "severity among the extra alert labels (each rule has its own)": (
        {"alerts": {"ruleLabels": {"severity": "page"}}},
        ["/alerts/ruleLabels"],
    ),
    "bad PrometheusRule switch": (
        {"alerts": {"prometheusRule": {"enabled": "yes"}}},
        ["/alerts/prometheusRule/enabled", "must be one of 'auto', true, false"],
    ),
    "bad label value": (
        {"grafana": {"dashboards": {"labelValue": "not ok!"}}},
        ["/grafana/dashboards/labelValue", "does not match pattern"],
    ),
}


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_with_a_clear_message(values: dict[str, Any], expected: list[str]) -> None:
    result = template_text(values, check=False)
    assert result.returncode != 0, f"accepted: {values}"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema in the document, with its JSON path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found += walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += walk(value, f"{path}/{index}")
    return found


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    """additionalProperties: false wherever properties are listed; free-form maps say what they hold."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = [
        path
        for path, node in walk(schema)
        if "properties" in node and node.get("additionalProperties") is not False
    ]
    assert not open_objects, open_objects
    untyped_maps = [
        path
        for path, node in walk(schema)
        if "properties" not in node
        and "additionalProperties" not in node
        and not path.startswith(("/properties/global", "/definitions/affinity"))
    ]
    assert not untyped_maps, untyped_maps


@pytest.mark.parametrize("files", [(), (ALL_ON,)], ids=["default", "all-on"])
def test_good_values_pass(files: tuple[Any, ...]) -> None:
    assert template_text(None, *files).returncode == 0
