"""`helm lint --strict` and kubeconform -strict (offline schemas: built-in kinds, our CRDs, the
Prometheus operator's monitors and rules) on the default values and on every option turned on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.chart.helm import ALL_ON, CHART, ROOT, helm, kubeconform, template_text

pytestmark = pytest.mark.unit

VALUES = {"default": (), "all-on": (ALL_ON,)}


@pytest.mark.parametrize("files", VALUES.values(), ids=VALUES.keys())
def test_helm_lint_strict(files: tuple[Path, ...]) -> None:
    args = [arg for file in files for arg in ("-f", str(file))]
    result = helm("lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("files", VALUES.values(), ids=VALUES.keys())
def test_every_rendered_object_conforms_strictly(files: tuple[Path, ...]) -> None:
    report = kubeconform(template_text(None, *files, crds=True).stdout)
    bad = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert not bad, bad
    kinds = {r["kind"] for r in report["resources"]}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "ConfigMap"} <= kinds
    if files:  # every option on: the monitors are checked against their schemas, not skipped
        assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Role", "RoleBinding"} <= kinds
        assert "PersistentVolumeClaim" in kinds
    summary = report["summary"]
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0
    assert summary["valid"] == len(report["resources"])


def test_kubeconform_refuses_what_the_api_server_would() -> None:
    """The check can fail: an unknown field, a wrong type and an unknown custom-resource field."""
    docs = [d for d in yaml.safe_load_all(template_text().stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["replica"] = 1
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9090"
    custom = {
        "apiVersion": "kubeloop.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m"},
        "spec": {"model": {"uri": "s3://b/m.onnx", "shasum": "x"}},
    }
    report = kubeconform(yaml.safe_dump_all([deployment, custom]))
    messages = {r["kind"]: r["msg"] for r in report["resources"] if r["status"] == "statusInvalid"}
    assert "'replica' not allowed" in messages["Deployment"]
    assert "containerPort" in messages["Deployment"] and "want integer" in messages["Deployment"]
    assert "'shasum' not allowed" in messages["ModelDeployment"]


def test_examples_conform_to_the_crds() -> None:
    text = "\n---\n".join(p.read_text() for p in sorted((ROOT / "manifests/examples").glob("*.yaml")))
    report = kubeconform(text)
    assert report["summary"]["valid"] == len(report["resources"]) >= 3, report
